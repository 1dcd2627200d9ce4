use super::*;
use crate::config;
use crate::rules::{AlertAfter, Period};
use std::time::Duration;

#[test]
fn debians_example_mon_cf_converts_and_its_output_passes_the_check() {
    let path = std::path::Path::new("/etc/mon/mon.cf");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("Debian's example mon.cf is missing ({e}): apt-get install mon (tests/lab deps installs it)")
    });
    let out = import("mon.cf", &text);
    let c = config::parse("monitor.toml", &out.toml)
        .unwrap_or_else(|e| panic!("{e}\n--- the output:\n{}", out.toml));
    let names: Vec<String> = c.services.iter().map(|s| s.id.to_string()).collect();
    assert_eq!(
        names,
        ["localhost/ping", "localhost/http", "localhost/smtp"],
        "{}",
        out.toml
    );
    let ping = &c.services[0];
    assert_eq!(ping.hosts, [std::net::IpAddr::from([127, 0, 0, 1])]);
    assert!(matches!(ping.probe.check, common::probe::Check::Ping(_)));
    assert_eq!(ping.interval, Duration::from_secs(300));
    // wd {Mon-Fri} hr {7am-10pm} (through 10pm) and wd {Sat-Sun}.
    assert_eq!(
        ping.rules.period,
        Some(Period::parse("Mon-Fri 07:00-23:00; Sat-Sun").unwrap())
    );
    assert_eq!(ping.rules.alert_every, Some(Duration::from_secs(3600)));
    assert_eq!(ping.alert, [["mail.alert", "root@localhost"]]);
    let http = &c.services[1];
    assert!(matches!(http.probe.check, common::probe::Check::Http(_)));
    assert_eq!(http.rules.num_alerts, Some(10));
    assert_eq!(http.upalert, [["mail.alert", "root@localhost"]]);
    let smtp = &c.services[2];
    assert_eq!(smtp.probe.timeout.as_std(), Duration::from_secs(60));
    assert_eq!(
        c.alert_dirs[0],
        std::path::PathBuf::from("/usr/lib/mon/alert.d")
    );
    // What had no equivalent was said, with its line.
    let w = out.warnings.join("\n");
    for want in [
        "service trap: a trap service has no equivalent: left out",
        "serverbind: no network server",
        "alertevery: differs from the first period's",
    ] {
        assert!(w.contains(want), "{want:?} not in:\n{w}");
    }
    assert!(out.warnings.iter().all(|w| w.starts_with("mon.cf:")), "{w}");
}

#[test]
fn each_directive_converts_or_is_warned_about() {
    let text = "\
alertdir = /srv/alerts:/usr/lib/mon/alert.d
mondir = /srv/mon.d
hostgroup web 192.0.2.13 \\
    192.0.2.14
hostgroup db 192.0.2.20

watch web
    service http
        description the web
        interval 1m
        failure_interval 20s
        monitor http.monitor -p 8080 -u /health
        depend db:mysql
        period hours: wd {mo tu we th fr} hr {9-17}
            alert mail.alert ops@example.com
            alertevery 2h strict
            alertafter 3
            numalerts 4
            upalert mail.alert ops@example.com
    service tcp
        monitor tcp.monitor -p 443
        period
            alert exit=2 mail.alert ops@example.com
            alertafter 10m
    service custom
        monitor my.monitor --deep
        interval 1d
        exclude_hosts 192.0.2.14
        period wd {Sat}
            alertafter 2 30m
            startupalert file.alert /tmp/x

watch db
    service mysql
        monitor tcp.monitor -p 3306
        depend (web:http && db:x)
";
    let out = import("t.cf", text);
    let c = config::parse("t.toml", &out.toml).unwrap_or_else(|e| panic!("{e}\n{}", out.toml));
    assert_eq!(
        c.alert_dirs,
        [
            std::path::PathBuf::from("/srv/alerts"),
            std::path::PathBuf::from("/usr/lib/mon/alert.d")
        ]
    );
    let http = &c.services[0];
    assert_eq!(http.hosts.len(), 2, "the continued hostgroup line");
    assert_eq!(http.description.as_deref(), Some("the web"));
    assert_eq!(http.interval, Duration::from_secs(60));
    assert_eq!(http.failure_interval, Duration::from_secs(20));
    assert_eq!(http.probe.port, Some(8080));
    assert_eq!(
        http.rules.depends,
        [crate::rules::ServiceId::new("db", "mysql")]
    );
    assert_eq!(
        http.rules.period,
        Some(Period::parse("Mon,Tue,Wed,Thu,Fri 09:00-18:00").unwrap())
    );
    assert_eq!(http.rules.alert_every, Some(Duration::from_secs(7200)));
    assert!(http.rules.alert_every_strict);
    assert_eq!(http.rules.alert_after, AlertAfter::Count(3));
    assert_eq!(http.rules.num_alerts, Some(4));
    let tcp = &c.services[1];
    assert_eq!(tcp.probe.port, Some(443));
    assert_eq!(tcp.alert, [["mail.alert", "ops@example.com"]]);
    assert_eq!(
        tcp.rules.alert_after,
        AlertAfter::Time(Duration::from_secs(600))
    );
    assert_eq!(tcp.rules.period, None, "an empty period: any time");
    let custom = &c.services[2];
    assert!(matches!(
        &custom.probe.check,
        common::probe::Check::External(_)
    ));
    assert!(
        out.toml
            .contains("command = \"/srv/mon.d/my.monitor --deep\""),
        "{}",
        out.toml
    );
    assert_eq!(custom.interval, Duration::from_secs(86400));
    assert_eq!(custom.rules.alert_after, AlertAfter::Count(2));
    assert_eq!(custom.startupalert, [["file.alert", "/tmp/x"]]);
    let w = out.warnings.join("\n");
    for want in [
        "t.cf:23: alert: exit= ranges have no equivalent",
        "t.cf:28: exclude_hosts: no equivalent",
        "t.cf:30: alertafter: N failures within a time",
        "t.cf:36: depend: \"(web:http\" is not group:service",
    ] {
        assert!(w.contains(want), "{want:?} not in:\n{w}");
    }
}

#[test]
fn time_period_conversions() {
    for (mon, ours) in [
        ("wd {Mon-Fri} hr {7am-10pm}", "Mon-Fri 07:00-23:00"),
        ("wd {Sat-Sun}", "Sat-Sun"),
        ("hr {12am-11pm}", "00:00-24:00"),
        ("hr {10pm-5am}", "22:00-06:00"),
        ("wd {1 7}", "Sun,Sat"),
        (
            "wd {Mon Wed Fri} hr {9am-4pm}, wd{Tue Thu} hr {9am-2pm}",
            "Mon,Wed,Fri 09:00-17:00; Tue,Thu 09:00-15:00",
        ),
        ("hr {12noon-12pm}", "12:00-13:00"),
    ] {
        assert_eq!(time_period(mon).as_deref(), Ok(ours), "{mon}");
        Period::parse(ours).unwrap_or_else(|e| panic!("{mon} -> {ours}: {e}"));
    }
    for bad in [
        "mo {jan}",
        "wd {Xyz}",
        "hr {25}",
        "hr {9am-4pm 6pm-8pm}",
        "wd {Mon",
        "wd Mon",
    ] {
        assert!(time_period(bad).is_err(), "{bad}");
    }
}
