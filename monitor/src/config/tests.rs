use super::*;

/// The issue's example, as written (plus the `web/ping` it depends on).
const EXAMPLE: &str = r#"# /etc/monitor/monitor.toml
[hostgroup]
web = ["192.0.2.13", "192.0.2.14"]

[[watch]]
group = "web"

[[watch.service]]
name = "http"
probe = { type = "http", port = 80, path = "/", expect = "200-299" }
interval = "10s"
failure_interval = "2s"      # probe faster while failing
alert_after = 3              # consecutive failures before the first alert (or "30s")
alert_every = "1h"           # repeat while failing
num_alerts = 10
depends = ["web/ping"]       # no alerts while a dependency fails
period = "Mon-Fri 07:00-22:00"
alert = ["mail.alert ops@example.com"]
upalert = ["mail.alert ops@example.com"]

[[watch.service]]
name = "ping"
probe = { type = "ping" }
"#;

#[test]
fn the_issues_example_works_as_written() {
    let c = parse("monitor.toml", EXAMPLE).unwrap();
    assert_eq!(c.alert_dirs, DEFAULT_ALERT_DIRS.map(PathBuf::from));
    assert_eq!(c.services.len(), 2);
    let http = &c.services[0];
    assert_eq!(http.id, ServiceId::new("web", "http"));
    assert_eq!(
        http.hosts,
        [
            "192.0.2.13".parse::<std::net::IpAddr>().unwrap(),
            "192.0.2.14".parse().unwrap()
        ]
    );
    assert_eq!(http.probe.port, Some(80));
    assert_eq!(http.interval, std::time::Duration::from_secs(10));
    assert_eq!(http.failure_interval, std::time::Duration::from_secs(2));
    assert_eq!(http.rules.alert_after, AlertAfter::Count(3));
    assert_eq!(
        http.rules.alert_every,
        Some(std::time::Duration::from_secs(3600))
    );
    assert_eq!(http.rules.num_alerts, Some(10));
    assert_eq!(http.rules.depends, [ServiceId::new("web", "ping")]);
    assert_eq!(
        http.rules.period,
        Some(Period::parse("Mon-Fri 07:00-22:00").unwrap())
    );
    assert!(http.rules.upalert && !http.rules.startupalert);
    assert_eq!(http.alert, [["mail.alert", "ops@example.com"]]);
    let ping = &c.services[1];
    assert_eq!(ping.interval, DEFAULT_INTERVAL);
    assert_eq!(ping.failure_interval, DEFAULT_INTERVAL);
    assert_eq!(ping.rules, Rules::default());
}

#[test]
fn alert_after_takes_a_time_too() {
    let text = EXAMPLE.replace("alert_after = 3 ", "alert_after = \"30s\" ");
    let c = parse("monitor.toml", &text).unwrap();
    assert_eq!(
        c.services[0].rules.alert_after,
        AlertAfter::Time(std::time::Duration::from_secs(30))
    );
}

/// Every error line of `text`.
fn errors(text: &str) -> Vec<String> {
    parse("m.toml", text)
        .unwrap_err()
        .errors()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn every_problem_is_placed_at_its_file_line_and_field() {
    let text = EXAMPLE
        .replace("group = \"web\"", "group = \"wbe\"")
        .replace("depends = [\"web/ping\"]", "depends = [\"web/pnig\"]")
        .replace("Mon-Fri 07:00", "Mon-Fry 07:00")
        .replace("num_alerts = 10", "num_alerts = 0");
    let e = errors(&text);
    let want = [
        "m.toml:6:9: watch[0].group: no [hostgroup] \"wbe\"; did you mean \"web\"?",
        "m.toml:15:14: watch[0].service[0].num_alerts: must be 1 or more, got 0",
        "m.toml:16:12: watch[0].service[0].depends[0]: no service \"web/pnig\" (write group/service)",
        "m.toml:17:10: watch[0].service[0].period: period \"Mon-Fry 07:00-22:00\": \"Fry\" is not a day",
    ];
    for w in want {
        assert!(e.iter().any(|l| l.contains(w)), "{w:?} not in {e:#?}");
    }
}

#[test]
fn a_dependency_cycle_is_named() {
    let text = r#"
[hostgroup]
web = ["192.0.2.13"]
db = ["192.0.2.20"]
[[watch]]
group = "web"
[[watch.service]]
name = "http"
probe = { type = "http" }
depends = ["db/mysql"]
[[watch]]
group = "db"
[[watch.service]]
name = "mysql"
probe = { type = "tcp", port = 3306 }
depends = ["web/http"]
"#;
    let e = errors(text);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].contains(
            "watch[0].service[0].depends: a dependency cycle: web/http -> db/mysql -> web/http"
        ),
        "{e:#?}"
    );
    // A service that depends on itself.
    let e = errors(&text.replace("depends = [\"db/mysql\"]", "depends = [\"web/http\"]"));
    assert!(
        e.iter()
            .any(|l| l.contains("a dependency cycle: web/http -> web/http")),
        "{e:#?}"
    );
}

#[test]
fn probes_hosts_names_and_commands_are_checked() {
    let base = r#"
[hostgroup]
web = ["192.0.2.13"]
[[watch]]
group = "web"
[[watch.service]]
name = "http"
probe = { type = "http" }
alert = ["mail.alert ops@example.com"]
"#;
    for (from, to, want) in [
        (
            "{ type = \"http\" }",
            "{ type = \"htp\" }",
            "watch[0].service[0].probe.type:",
        ),
        (
            "{ type = \"http\" }",
            "{ kind = \"http\" }",
            "probe.kind: write type = \"...\" for the kind of probe",
        ),
        (
            "{ type = \"http\" }",
            "{ port = 80 }",
            "probe.type: missing: the kind of probe",
        ),
        (
            "{ type = \"http\" }",
            "{ type = \"http\", colour = 1 }",
            "colour",
        ),
        // (No unresolvable name here: resolving one would ask a DNS server off this machine.)
        (
            "[\"192.0.2.13\"]",
            "[\"a b\"]",
            "hostgroup.web[0]: \"a b\" is neither an IP address nor a host name",
        ),
        (
            "[\"192.0.2.13\"]",
            "[]",
            "hostgroup.web: an empty host group",
        ),
        (
            "name = \"http\"",
            "name = \"a/b\"",
            "name: a non-empty name without \"/\"",
        ),
        (
            "\"mail.alert ops@example.com\"",
            "\"mail.alert 'ops\"",
            "alert[0]: unbalanced quotes",
        ),
        (
            "\"mail.alert ops@example.com\"",
            "\"\"",
            "alert[0]: an empty command",
        ),
        (
            "alert = [",
            "interval = \"0s\"\nalert = [",
            "interval: must be longer than 0s",
        ),
        (
            "alert = [",
            "alert_after = 0\nalert = [",
            "alert_after: a count of failures from 1",
        ),
        (
            "alert = [",
            "colour = 1\nalert = [",
            "unknown field `colour`",
        ),
    ] {
        let text = base.replace(from, to);
        assert_ne!(text, base, "{from:?} not in the base");
        let e = errors(&text);
        assert!(
            e.iter().any(|l| l.contains(want)),
            "{to:?}: {want:?} not in {e:#?}"
        );
    }
    // The same service twice in one watch.
    let twice = format!("{base}[[watch.service]]\nname = \"http\"\nprobe = {{ type = \"tcp\" }}\n");
    assert!(
        errors(&twice)
            .iter()
            .any(|l| l.contains("web/http is defined twice")),
        "{:#?}",
        errors(&twice)
    );
}

#[test]
fn a_mon_monitor_script_is_an_external_probe() {
    let text = r#"
alert_dirs = ["/srv/alerts"]
[hostgroup]
web = ["192.0.2.13"]
[[watch]]
group = "web"
[[watch.service]]
name = "tcp"
probe = { type = "external", command = "/usr/lib/mon/mon.d/tcp.monitor -p 80" }
"#;
    let c = parse("m.toml", text).unwrap();
    assert_eq!(c.alert_dirs, [PathBuf::from("/srv/alerts")]);
    assert!(matches!(
        c.services[0].probe.check,
        common::probe::Check::External(_)
    ));
}

#[test]
fn host_names_are_resolved_when_the_file_is_read() {
    let text = EXAMPLE.replace(
        "[\"192.0.2.13\", \"192.0.2.14\"]",
        "[\"localhost\", \"192.0.2.14\"]",
    );
    let c = parse("m.toml", &text).unwrap();
    assert_eq!(
        c.services[0].hosts,
        [
            std::net::IpAddr::from([127, 0, 0, 1]),
            "192.0.2.14".parse().unwrap()
        ]
    );
}
