//! `monitor run`, the binary, against real servers on loopback: a server goes down and up and the
//! alerts (our recording script and Debian mon's `file.alert`) get mon's argv, environment and
//! stdin; each suppression rule seen in the events; a mon `.monitor` script as the probe; the
//! state across a restart; bad monitor scripts, bad alerts and bad state files.

mod daemon_util;

use std::time::Duration;

use daemon_util::*;

const WAIT: Duration = Duration::from_secs(20);

fn need_mon() {
    for f in [
        "/usr/lib/mon/alert.d/file.alert",
        "/usr/lib/mon/mon.d/tcp.monitor",
    ] {
        assert!(
            std::path::Path::new(f).exists(),
            "{f} is missing: apt-get install mon (tests/lab deps installs it)"
        );
    }
}

#[test]
fn a_server_down_then_up_alerts_as_mon_calls_its_alerts() {
    need_mon();
    let s = Scratch::new("downup");
    let server = Server::start(0);
    let port = server.port;
    let config = s.config(&format!(
        r#"
[hostgroup]
local = ["127.0.0.1"]

[[watch]]
group = "local"

[[watch.service]]
name = "tcp"
description = "a test server"
probe = {{ type = "tcp", port = {port} }}
interval = "300ms"
failure_interval = "100ms"
alert_after = 2
alert = ["rec.alert down", "file.alert -d {d} alerts.log"]
upalert = ["rec.alert up", "file.alert -d {d} alerts.log"]

[[watch.service]]
name = "quiet"
probe = {{ type = "tcp", port = {port} }}
interval = "300ms"
alert_after = 1000
upalert = ["rec.alert quiet-up"]

[[watch.service]]
name = "script"
probe = {{ type = "external", command = "/usr/lib/mon/mon.d/tcp.monitor -p {port}" }}
interval = "300ms"
alert = ["rec.alert script"]
upalert = ["rec.alert script-up"]
"#,
        d = s.dir.display()
    ));
    let mut d = Daemon::start(&s, &config);
    for svc in ["local/tcp", "local/quiet", "local/script"] {
        d.wait(&format!("{svc} ok"), WAIT, |v| {
            is(v, "change", svc) && v["to"] == "ok"
        });
    }
    let status = client(&s, &["status"]);
    assert!(status.status.success(), "{status:?}");
    let out = text(&status.stdout);
    assert!(out.contains("local/tcp     ok\n"), "{out}");

    server.stop();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    d.wait("local/tcp fails", WAIT, |v| {
        is(v, "change", "local/tcp") && v["to"] == "fail" && v["summary"] == "127.0.0.1"
    });
    d.wait("the failure alert", WAIT, |v| {
        is(v, "alert", "local/tcp") && v["kind"] == "failure"
    });
    let down = s.wait_call("down", WAIT, |c| c.last() == "down" && !c.stdin.is_empty());
    assert_eq!(down.argv.len(), 9, "{down:?}");
    assert_eq!(
        down.argv[..7],
        ["-s", "tcp", "-g", "local", "-h", "127.0.0.1", "-t"]
    );
    let t: u64 = down.argv[7].parse().unwrap();
    assert!(t >= t0 && t < t0 + 60, "{down:?}");
    assert_eq!(down.argv[8..], ["down"]);
    assert!(
        down.stdin.starts_with("127.0.0.1\n127.0.0.1: ") && down.stdin.contains("refused"),
        "{down:?}"
    );
    for (k, v) in [
        ("MON_ALERTTYPE", "failure"),
        ("MON_GROUP", "local"),
        ("MON_SERVICE", "tcp"),
        ("MON_RETVAL", "1"),
        ("MON_OPSTATUS", "0"),
        ("MON_LAST_SUMMARY", "127.0.0.1"),
        ("MON_DESCRIPTION", "a test server"),
    ] {
        assert_eq!(
            down.env.get(k).map(String::as_str),
            Some(v),
            "{k}: {down:?}"
        );
    }
    assert_eq!(down.env["MON_LAST_OUTPUT"], down.stdin);
    assert_eq!(down.env["MON_STATEDIR"], s.dir.display().to_string());
    let first: u64 = down.env["MON_FIRST_FAILURE"].parse().unwrap();
    assert!(first >= t0 && first <= t, "{down:?}");
    assert!(down.env.contains_key("MON_LAST_SUCCESS"));
    assert!(!down.env.contains_key("MON_ACK"));

    // mon's own tcp.monitor as the probe: exit status and first line (the failing host).
    d.wait("the script's alert", WAIT, |v| {
        is(v, "alert", "local/script")
    });
    let script = s.wait_call("script", WAIT, |c| {
        c.last() == "script" && !c.stdin.is_empty()
    });
    assert_eq!(script.stdin.lines().next(), Some("127.0.0.1"), "{script:?}");
    assert_eq!(script.env["MON_SERVICE"], "script");

    let failures = client(&s, &["list", "failures"]);
    let out = text(&failures.stdout);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.contains("local/tcp  127.0.0.1  (failing for"), "{out}");
    let json = client(&s, &["status", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let tcp = &report["services"][0];
    assert_eq!(tcp["service"], "local/tcp");
    assert_eq!(tcp["status"], "fail");
    assert_eq!(tcp["interval_ms"], 100);
    assert!(tcp["alerts_sent"].as_u64().unwrap() >= 1, "{tcp}");

    let server = Server::start(port);
    d.wait("local/tcp back", WAIT, |v| {
        is(v, "change", "local/tcp") && v["to"] == "ok"
    });
    d.wait("the up alert", WAIT, |v| {
        is(v, "alert", "local/tcp") && v["kind"] == "up"
    });
    d.wait("local/quiet back", WAIT, |v| {
        is(v, "change", "local/quiet") && v["to"] == "ok"
    });
    d.wait("local/script back", WAIT, |v| {
        is(v, "change", "local/script") && v["to"] == "ok"
    });
    let up = s.wait_call("up", WAIT, |c| c.last() == "up");
    assert_eq!(
        up.argv[..6],
        ["-s", "tcp", "-g", "local", "-h", "127.0.0.1"]
    );
    assert_eq!(up.argv[8..], ["-u", "up"]);
    assert_eq!(up.env["MON_ALERTTYPE"], "up");
    assert_eq!(up.env["MON_OPSTATUS"], "1");
    s.wait_call("script-up", WAIT, |c| c.last() == "script-up");
    // quiet never alerted (alert_after 1000): no upalert either.
    assert_eq!(d.count(|v| is(v, "alert", "local/quiet")), 0);
    assert!(s.calls().iter().all(|c| c.last() != "quiet-up"));

    // Debian mon's file.alert, unchanged, logged both.
    let log_path = s.path("alerts.log");
    let end = std::time::Instant::now() + WAIT;
    let log = loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains("up local tcp") || std::time::Instant::now() > end {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(log.starts_with("failure local tcp "), "{log}");
    assert!(log.contains("DESCR=a test server\nOPSTATUS=0\n"), "{log}");
    assert!(log.contains("\nup local tcp "), "{log}");
    assert!(log.contains("OPSTATUS=1\n"), "{log}");

    let (status, log) = d.stop();
    assert!(status.success(), "{status:?}\n{log}");
    server.stop();
    s.remove();
}

/// The day after today, as the period syntax writes it.
fn tomorrow() -> &'static str {
    let out = std::process::Command::new("date")
        .arg("+%u")
        .output()
        .unwrap();
    let today: usize = text(&out.stdout).trim().parse().unwrap();
    ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][today % 7]
}

#[test]
fn every_suppression_rule_in_the_events() {
    let s = Scratch::new("rules");
    let port = closed_port();
    let svc = |name: &str, extra: &str| {
        format!(
            "[[watch.service]]\nname = \"{name}\"\nprobe = {{ type = \"tcp\", port = {port} }}\ninterval = \"100ms\"\nalert = [\"rec.alert {name}\"]\n{extra}\n"
        )
    };
    let body = [
        "[hostgroup]\ng = [\"127.0.0.1\"]\n[[watch]]\ngroup = \"g\"\n".to_string(),
        svc("base", ""),
        svc("dep", "depends = [\"g/base\"]\nalert_after = 3"),
        svc("num", "num_alerts = 2"),
        svc("every", "alert_every = \"1h\""),
        svc("period", &format!("period = \"{}\"", tomorrow())),
        svc("acked", ""),
        svc("disabled", ""),
        svc(
            "start",
            "startupalert = [\"rec.alert start\"]\nalert_after = 1000",
        ),
    ]
    .concat();
    let config = s.config(&body);
    let mut d = Daemon::start(&s, &config);
    d.wait("the startup alert", WAIT, |v| {
        is(v, "alert", "g/start") && v["kind"] == "startup"
    });
    let start = s.wait_call("start", WAIT, |c| c.last() == "start");
    assert_eq!(start.env["MON_ALERTTYPE"], "startup");

    let suppressed = |d: &mut Daemon, svc: &str, why: &str| {
        let (svc, why) = (svc.to_string(), why.to_string());
        d.wait(&format!("{svc} suppressed: {why}"), WAIT, move |v| {
            is(v, "suppressed", &svc) && v["why"] == why.as_str()
        });
    };
    suppressed(&mut d, "g/dep", "g/base (a dependency) is failing");
    suppressed(&mut d, "g/num", "2 alerts sent already (num_alerts)");
    suppressed(&mut d, "g/every", "repeat not due yet (alert_every)");
    suppressed(&mut d, "g/period", "outside the alert period");
    assert_eq!(d.count(|v| is(v, "alert", "g/dep")), 0);
    assert_eq!(d.count(|v| is(v, "alert", "g/num")), 2);
    assert_eq!(d.count(|v| is(v, "alert", "g/every")), 1);
    assert_eq!(d.count(|v| is(v, "alert", "g/period")), 0);

    // Acknowledged: no alert after the ack, until it recovers.
    d.wait("an alert of g/acked", WAIT, |v| is(v, "alert", "g/acked"));
    let ack = client(&s, &["ack", "g/acked", "working on it"]);
    assert!(ack.status.success(), "{ack:?}");
    d.wait("the ack event", WAIT, |v| is(v, "ack", "g/acked"));
    let before = d.count(|v| is(v, "alert", "g/acked"));
    suppressed(&mut d, "g/acked", "failure acknowledged");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(d.count(|v| is(v, "alert", "g/acked")), before);
    let nothing = client(&s, &["ack", "g/nope", "x"]);
    assert_eq!(nothing.status.code(), Some(1), "{nothing:?}");
    assert!(
        text(&nothing.stderr).contains("no service g/nope"),
        "{nothing:?}"
    );

    // Disabled, then enabled again.
    let dis = client(&s, &["disable", "g/disabled"]);
    assert_eq!(text(&dis.stdout), "1 service(s)\n", "{dis:?}");
    d.wait("the disable event", WAIT, |v| {
        is(v, "disable", "g/disabled")
    });
    suppressed(&mut d, "g/disabled", "alerts disabled");
    let status = text(&client(&s, &["status"]).stdout);
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("g/disabled") && l.ends_with("[alerts disabled]")),
        "{status}"
    );
    let en = client(&s, &["enable", "g"]);
    assert_eq!(text(&en.stdout), "8 service(s)\n", "{en:?}");
    let n = d.count(|v| is(v, "alert", "g/disabled"));
    let end = std::time::Instant::now() + WAIT;
    while d.count(|v| is(v, "alert", "g/disabled")) <= n {
        assert!(std::time::Instant::now() < end, "no alert after enable");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    s.remove();
}

#[test]
fn the_state_survives_a_restart_and_a_bad_state_file_starts_fresh() {
    let s = Scratch::new("restart");
    let port = closed_port();
    let config = s.config(&format!(
        r#"
[hostgroup]
g = ["127.0.0.1"]
[[watch]]
group = "g"
[[watch.service]]
name = "s"
probe = {{ type = "tcp", port = {port} }}
interval = "100ms"
alert = ["rec.alert s"]
[[watch.service]]
name = "t"
probe = {{ type = "tcp", port = {port} }}
interval = "100ms"
"#
    ));
    let mut d = Daemon::start(&s, &config);
    d.wait("an alert", WAIT, |v| is(v, "alert", "g/s"));
    assert!(client(&s, &["ack", "g/s", "known"]).status.success());
    assert!(client(&s, &["disable", "g/t"]).status.success());
    let before: serde_json::Value =
        serde_json::from_slice(&client(&s, &["status", "--json"]).stdout).unwrap();
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path("state.json")).unwrap()).unwrap();
    assert_eq!(saved["version"], 1);
    assert_eq!(saved["services"]["g/s"]["acked"], "known");
    assert_eq!(saved["services"]["g/t"]["disabled"], true);

    let mut d = Daemon::start(&s, &config);
    let after = status_json(&s);
    let (b, a) = (&before["services"][0], &after["services"][0]);
    assert_eq!(a["status"], "fail", "{after}");
    assert_eq!(a["acked"], "known");
    assert_eq!(a["failing_since"], b["failing_since"]);
    assert!(a["alerts_sent"].as_u64() >= b["alerts_sent"].as_u64());
    assert_eq!(after["services"][1]["disabled"], true);
    d.wait("still acknowledged", WAIT, |v| {
        is(v, "suppressed", "g/s") && v["why"] == "failure acknowledged"
    });
    assert_eq!(d.count(|v| is(v, "alert", "g/s")), 0);
    // No change event: the service was failing before the restart and still is.
    assert_eq!(d.count(|v| is(v, "change", "g/s")), 0);
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");

    for (content, says) in [
        ("{not json", "is corrupt"),
        ("{\"version\":0,\"services\":{}}", "is of version 0"),
    ] {
        std::fs::write(s.path("state.json"), content).unwrap();
        let mut d = Daemon::start(&s, &config);
        d.wait("a fresh start", WAIT, |v| {
            is(v, "change", "g/s") && v["from"] == "untested"
        });
        let (status, log) = d.stop();
        assert!(status.success(), "{log}");
        assert!(log.contains(says), "{says}: {log}");
        assert!(log.contains("state file not used"), "{log}");
    }
    s.remove();
}

#[test]
fn bad_monitor_scripts_and_bad_alerts() {
    let s = Scratch::new("bad");
    let pid_file = s.path("hang.pid");
    let hang = s.script(
        "hang.monitor",
        &format!(
            "#!/bin/sh\nsleep 300 &\necho $! > {}\nsleep 300\n",
            pid_file.display()
        ),
    );
    let loud = s.script(
        "loud.monitor",
        "#!/bin/sh\nhead -c 5000000 /dev/zero | tr '\\0' x\necho\nexit 1\n",
    );
    s.script("alert.d/noexec.alert", "#!/bin/sh\nexit 0\n");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            s.path("alert.d/noexec.alert"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    let config = s.config(&format!(
        r#"
[hostgroup]
g = ["127.0.0.1"]
[[watch]]
group = "g"
[[watch.service]]
name = "hang"
probe = {{ type = "external", command = "{hang}", timeout = "1s" }}
interval = "2s"
[[watch.service]]
name = "loud"
probe = {{ type = "external", command = "{loud}" }}
interval = "1s"
alert = ["missing.alert", "noexec.alert", "rec.alert after"]
"#,
        hang = hang.display(),
        loud = loud.display()
    ));
    let mut d = Daemon::start(&s, &config);
    d.wait("the hung script fails", WAIT, |v| {
        is(v, "change", "g/hang") && v["to"] == "fail"
    });
    let report: serde_json::Value =
        serde_json::from_slice(&client(&s, &["status", "--json"]).stdout).unwrap();
    let hang = &report["services"][0];
    assert!(
        hang["detail"]
            .as_str()
            .unwrap()
            .contains("timeout after 1s"),
        "{hang}"
    );
    // Killed with its process group: the background sleep is gone too.
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok() {
        assert!(
            std::time::Instant::now() < end,
            "the hung script's child {pid} outlived its timeout"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Megabytes of output: capped, the service fails with a bounded reason.
    d.wait("the loud script fails", WAIT, |v| {
        is(v, "change", "g/loud") && v["to"] == "fail"
    });
    let report: serde_json::Value =
        serde_json::from_slice(&client(&s, &["status", "--json"]).stdout).unwrap();
    let loud = &report["services"][1];
    let detail = loud["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("127.0.0.1: exit 1: xxx"),
        "{}",
        &detail[..80]
    );
    assert!(detail.len() < 16 * 1024, "{} bytes", detail.len());

    // A missing and a non-executable alert are logged; the next one still runs.
    let after = s.wait_call("after", WAIT, |c| {
        c.last() == "after" && !c.stdin.is_empty()
    });
    assert!(after.stdin.len() < 16 * 1024);
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("alert \\\"missing.alert\\\" not found")
            || log.contains("alert \"missing.alert\" not found"),
        "{log}"
    );
    assert!(log.contains("noexec.alert is not executable"), "{log}");
    s.remove();
}

#[test]
fn a_broken_configuration_is_refused_at_start_and_kept_out_on_reload() {
    let s = Scratch::new("reload");
    let port = closed_port();
    let good = format!(
        "[hostgroup]\ng = [\"127.0.0.1\"]\n[[watch]]\ngroup = \"g\"\n[[watch.service]]\nname = \"s\"\nprobe = {{ type = \"tcp\", port = {port} }}\ninterval = \"100ms\"\n"
    );
    let config = s.config(&good);
    let mut d = Daemon::start(&s, &config);
    d.wait("g/s fails", WAIT, |v| {
        is(v, "change", "g/s") && v["to"] == "fail"
    });
    // A period that does not parse: the reload is refused, the old configuration keeps running.
    s.config(&format!("{good}period = \"Mon-Fry\"\n"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let end = std::time::Instant::now() + WAIT;
    while !d.log().contains("the configuration is invalid") {
        assert!(std::time::Instant::now() < end, "{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        d.log().contains("\\\"Fry\\\" is not a day") || d.log().contains("\"Fry\" is not a day"),
        "{}",
        d.log()
    );
    let status = text(&client(&s, &["status"]).stdout);
    assert!(status.starts_with("g/s  FAIL"), "{status}");
    // A good one with a second service: taken, the first keeps its state.
    s.config(&format!(
        "{good}[[watch.service]]\nname = \"u\"\nprobe = {{ type = \"tcp\", port = {port} }}\ninterval = \"100ms\"\n"
    ));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    d.wait("the new service", WAIT, |v| is(v, "change", "g/u"));
    assert_eq!(d.count(|v| is(v, "change", "g/s")), 1);
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");

    // At start: exit 2 and every problem named.
    let bad = s.config(&format!(
        "{good}period = \"Mon-Fry\"\ndepends = [\"g/s\"]\n"
    ));
    let out = monitor()
        .args(["run", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.contains("watch[0].service[0].period"), "{err}");
    assert!(err.contains("a dependency cycle: g/s -> g/s"), "{err}");
    s.remove();
}

#[test]
fn the_service_manager_hears_ready_status_and_stopping() {
    let s = Scratch::new("notify");
    let sock_path = s.path("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let port = closed_port();
    let config = s.config(&format!(
        "[hostgroup]\ng = [\"127.0.0.1\"]\n[[watch]]\ngroup = \"g\"\n[[watch.service]]\nname = \"s\"\nprobe = {{ type = \"tcp\", port = {port} }}\ninterval = \"100ms\"\n"
    ));
    let mut d = Daemon::start_with(&s, &config, &[("NOTIFY_SOCKET", &sock_path)]);
    let mut heard = String::new();
    let mut buf = [0u8; 4096];
    let mut next = |heard: &mut String| {
        let n = sock.recv(&mut buf).expect("a notification");
        heard.push_str(&String::from_utf8_lossy(&buf[..n]));
    };
    while !heard.contains("READY=1") {
        next(&mut heard);
    }
    d.wait("g/s fails", WAIT, |v| {
        is(v, "change", "g/s") && v["to"] == "fail"
    });
    // The status line follows the state (written with the state file).
    while !heard.contains("STATUS=0 ok, 1 failing, 0 untested") {
        next(&mut heard);
    }
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    while !heard.contains("STOPPING=1") {
        next(&mut heard);
    }
    s.remove();
}
