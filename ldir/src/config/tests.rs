use super::*;
use common::ipvs::{Protocol, ServiceFlags};

/// The issue's example, as written (the standalone example ships the same file).
pub(crate) const WEB: &str = include_str!("../../../contrib/examples/standalone/ldir/web.toml");

fn files(global: Option<&str>, vs: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    build(
        Path::new("/etc/ldir"),
        global.map(|g| (PathBuf::from("/etc/ldir/ldir.toml"), Ok(g.to_string()))),
        vs.iter()
            .map(|(n, t)| (PathBuf::from(format!("/etc/ldir/{n}")), Ok(t.to_string())))
            .collect(),
    )
}

fn errors(global: Option<&str>, vs: &[(&str, &str)]) -> Vec<String> {
    match files(global, vs) {
        Ok(_) => panic!("accepted: {vs:?}"),
        Err(e) => e.errors().iter().map(|e| e.to_string()).collect(),
    }
}

#[track_caller]
fn assert_error(errs: &[String], want: &str) {
    assert!(
        errs.iter().any(|e| e.contains(want)),
        "no error containing {want:?} in:\n{}",
        errs.join("\n")
    );
}

#[test]
fn the_issue_example_loads_as_written() {
    let c = files(None, &[("web.toml", WEB)]).unwrap();
    assert_eq!(c.virtuals.len(), 1);
    let v = &c.virtuals[0];
    assert_eq!(v.name, "web");
    let key = ServiceKey::tcp("192.0.2.100:80".parse().unwrap());
    assert_eq!(v.service.key, key);
    assert_eq!(v.service.scheduler, Scheduler::Wrr);
    assert_eq!(v.service.timeout, 300);
    assert!(v.service.flags.persistent);
    assert_eq!(
        (v.check, v.interval, v.rise, v.fall),
        (CheckMode::Probe, Duration::from_secs(2), 2, 3)
    );
    assert!(v.quiescent && v.cleanstop && !v.readd_quiescent);
    assert_eq!(
        v.fallback.as_ref().unwrap().addr,
        "192.0.2.50:80".parse().unwrap()
    );
    assert_eq!(v.reals.len(), 11);
    assert_eq!(v.reals[0].dest.weight, 10);
    assert_eq!(v.reals[0].dest.forward, Forward::Route);
    assert_eq!(v.reals[10].dest.addr, "192.0.2.29:80".parse().unwrap());
    assert_eq!(v.reals[10].dest.weight, 5);
    let probe = v.reals[0].probe.as_ref().unwrap();
    assert_eq!(probe.target_display(), "192.0.2.13:80");
    assert_eq!(probe.spec.timeout.as_std(), Duration::from_secs(1));
    let common::probe::Check::Http(h) = &probe.spec.check else {
        panic!("{probe:?}")
    };
    assert_eq!(h.path, "/health");
    assert_eq!(c.global.reconcile_interval, Duration::from_secs(10));
    assert_eq!(c.global.socket, PathBuf::from("/run/ldir/ldir.sock"));
}

#[test]
fn every_field_of_the_schema_is_read() {
    let global = r#"
[global]
quiescent = false
readd_quiescent = true
cleanstop = false
maintenance_dir = "/etc/ldir/maintenance"
fallback_command = "/usr/local/bin/sorry --quiet"
reconcile_interval = "5s"
expire_nodest_conn = true
expire_quiescent_template = false
state_dir = "/run/ldir2"
socket_group = "lbadmin"
metrics = "127.0.0.1:9101"

[check]
interval = "3s"
timeout = "2s"
rise = 2
fall = 4

[alert]
command = "/usr/sbin/sendmail -t"
to = "ops@example.org"
from = "ldir@example.org"
repeat = "1h"
on = ["down"]

[sync]
interface = "eth1"
sync_id = 9
group = "224.0.0.81"
port = 8848
ttl = 1
max_len = 1472
"#;
    let dns = r#"
[virtual]
address = "[2001:db8::53]:53"
protocol = "udp"
scheduler = "sh"
scheduler_flags = ["sh-fallback", "sh-port"]
persistent = "60s"
netmask = 64
ops = true
forwarding = "masq"
fallback = "[2001:db8::99]"
fallback_forwarding = "masq"
name = "resolver"
comment = "two resolvers"

[check]
type = "dns"
name = "example.org"
record_type = "AAAA"

[[real]]
address = "2001:db8::1"
forwarding = "gate"
upper_threshold = 100
lower_threshold = 50

[[real]]
address = "[2001:db8::2]:5353"
[real.check]
port = 53
"#;
    let mark = r#"
[virtual]
fwmark = 7
family = "inet6"
forwarding = "gue"
tunnel_port = 6080
tunnel_checksum = "csum"
pe = "sip"
[check]
type = "on"
[[real]]
address = "192.0.2.7"
"#;
    let c = files(Some(global), &[("dns.toml", dns), ("mark.toml", mark)]).unwrap();
    let g = &c.global;
    assert_eq!(g.reconcile_interval, Duration::from_secs(5));
    assert_eq!(
        (g.expire_nodest_conn, g.expire_quiescent_template),
        (Some(true), Some(false))
    );
    assert_eq!(g.socket, PathBuf::from("/run/ldir2/ldir.sock"));
    assert_eq!(g.socket_group.as_deref(), Some("lbadmin"));
    assert_eq!(g.metrics, Some("127.0.0.1:9101".parse().unwrap()));
    assert_eq!(
        g.maintenance_dir,
        Some(PathBuf::from("/etc/ldir/maintenance"))
    );
    let sync = c.sync.as_ref().unwrap().daemon(DaemonRole::Backup);
    assert_eq!(
        (
            sync.interface.as_str(),
            sync.sync_id,
            sync.port,
            sync.ttl,
            sync.max_len
        ),
        ("eth1", 9, Some(8848), Some(1), Some(1472))
    );

    let d = &c.virtuals[0];
    assert_eq!(d.name, "resolver");
    assert_eq!(
        d.service.key,
        ServiceKey::udp("[2001:db8::53]:53".parse().unwrap())
    );
    assert_eq!(
        d.service.flags,
        ServiceFlags {
            persistent: true,
            one_packet: true,
            sched_fallback: true,
            sched_port: true,
            sched3: false
        }
    );
    assert_eq!(d.service.netmask, Netmask::V6(64));
    assert_eq!((d.interval, d.rise, d.fall), (Duration::from_secs(3), 2, 4));
    assert!(!d.quiescent && d.readd_quiescent && !d.cleanstop);
    assert_eq!(
        d.fallback_command.as_deref(),
        Some(&["/usr/local/bin/sorry".to_string(), "--quiet".into()][..])
    );
    assert_eq!(
        d.fallback.as_ref().unwrap().addr,
        "[2001:db8::99]:53".parse().unwrap()
    );
    let a = d.alert.as_ref().unwrap();
    assert_eq!(
        (a.to.as_str(), a.from.as_deref(), a.repeat),
        (
            "ops@example.org",
            Some("ldir@example.org"),
            Duration::from_secs(3600)
        )
    );
    assert_eq!(
        a.on,
        AlertOnSet {
            down: true,
            up: false,
            fallback: false
        }
    );
    let r0 = &d.reals[0];
    assert_eq!(
        (
            r0.dest.addr,
            r0.dest.forward,
            r0.dest.upper_threshold,
            r0.dest.lower_threshold
        ),
        ("[2001:db8::1]:53".parse().unwrap(), Forward::Route, 100, 50)
    );
    assert_eq!(
        r0.probe.as_ref().unwrap().spec.timeout.as_std(),
        Duration::from_secs(2)
    );
    assert_eq!(r0.probe.as_ref().unwrap().spec.port, Some(53));
    let common::probe::Check::Dns(dns) = &r0.probe.as_ref().unwrap().spec.check else {
        panic!()
    };
    assert_eq!(dns.qtype, "AAAA", "record_type is the dns kind's own type");
    assert_eq!(d.reals[1].dest.forward, Forward::Masq);
    assert_eq!(
        d.reals[1].probe.as_ref().unwrap().spec.port,
        Some(53),
        "the per-real override"
    );

    let m = &c.virtuals[1];
    assert_eq!(m.service.key, ServiceKey::fwmark(Family::Inet6, 7));
    assert_eq!(m.service.pe_name.as_deref(), Some("sip"));
    assert_eq!(m.check, CheckMode::On);
    assert!(m.reals[0].probe.is_none());
    assert_eq!(m.reals[0].dest.addr, "192.0.2.7:0".parse().unwrap());
    assert_eq!(
        m.reals[0].dest.forward,
        Forward::Tunnel(Encap::Gue {
            port: 6080,
            checksum: TunnelChecksum::Checksum
        })
    );
}

#[test]
fn defaults_without_ldir_toml_or_check() {
    let c = files(
        None,
        &[(
            "a.toml",
            "[virtual]\naddress = \"192.0.2.1:25\"\n[[real]]\naddress = \"192.0.2.2\"\n",
        )],
    )
    .unwrap();
    let v = &c.virtuals[0];
    assert_eq!(v.service.key.family(), Family::Inet);
    assert!(matches!(
        v.service.key,
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            ..
        }
    ));
    assert_eq!(
        (v.interval, v.rise, v.fall, v.quiescent),
        (Duration::from_secs(10), 1, 1, true)
    );
    let p = v.reals[0].probe.as_ref().unwrap();
    assert_eq!(p.spec.check.name(), "tcp");
    assert_eq!(p.addr(), Some("192.0.2.2:25".parse().unwrap()));
}

// --- Bad input: one test per case the issue lists, each naming file, line and field. ---

#[test]
fn the_same_virtual_in_two_files_names_both() {
    let e = errors(
        None,
        &[
            ("a.toml", WEB),
            ("b.toml", &WEB.replace("# /etc", "\n# /etc")),
        ],
    );
    assert_error(
        &e,
        "/etc/ldir/a.toml:3:11: virtual: the virtual service tcp 192.0.2.100:80 is defined in 2 files: /etc/ldir/a.toml and /etc/ldir/b.toml",
    );
    assert_error(&e, "/etc/ldir/b.toml:4:11: virtual: the virtual service");
}

#[test]
fn a_real_listed_twice() {
    let t = WEB.replace("address = \"192.0.2.13:80\"", "address = \"192.0.2.25:80\"");
    let e = errors(None, &[("web.toml", &t)]);
    assert_error(
        &e,
        "/etc/ldir/web.toml:25:11: real[1].address: real 192.0.2.25:80 is listed twice in this virtual (also by real[0], line 21)",
    );
}

#[test]
fn a_range_past_65536_reals() {
    let t = WEB.replace("192.0.2.20->192.0.2.29:80", "198.18.0.0->198.19.0.0:80");
    assert_error(
        &errors(None, &[("web.toml", &t)]),
        "web.toml:25:11: real[1].address: the range names 65537 reals; at most 65536 per range",
    );
    let ok = WEB.replace("192.0.2.20->192.0.2.29:80", "198.18.0.0->198.18.255.255:80");
    assert_eq!(
        files(None, &[("web.toml", &ok)]).unwrap().virtuals[0]
            .reals
            .len(),
        65_537
    );
}

#[test]
fn a_weight_out_of_range() {
    let t = WEB.replace("weight = 10", "weight = -1");
    assert_error(
        &errors(None, &[("web.toml", &t)]),
        "/etc/ldir/web.toml:22:10: real[0].weight: must be 0..=65535, got -1",
    );
    let t = WEB.replace("weight = 10", "weight = 65536");
    assert_error(
        &errors(None, &[("web.toml", &t)]),
        "real[0].weight: must be 0..=65535, got 65536",
    );
}

#[test]
fn unknown_keys_get_did_you_mean() {
    let t = WEB.replace("scheduler = ", "schedular = ");
    assert_error(
        &errors(None, &[("web.toml", &t)]),
        "web.toml:5:1: virtual.schedular: unknown field `schedular`, did you mean `scheduler`?",
    );
    let t = WEB.replace("path = ", "pth = ");
    assert_error(
        &errors(None, &[("web.toml", &t)]),
        "web.toml:13:7: check.pth: unknown field `pth`, did you mean `path`?",
    );
    let t = WEB.replace("type = \"http\"", "type = \"htp\"");
    assert_error(
        &errors(None, &[("web.toml", &t)]),
        "web.toml:12:8: check.type: \"htp\" is not a check type: did you mean \"http\"?",
    );
    let t = WEB.replace("weight = 10", "wieght = 10");
    assert_error(
        &errors(None, &[("web.toml", &t)]),
        "real[0].wieght: unknown field `wieght`, did you mean `weight`?",
    );
}

#[test]
fn a_bad_check_value_is_placed_at_its_key() {
    let t = WEB.replace("expect = \"200-299\"", "expect = \"2xx\"");
    assert_error(
        &errors(None, &[("web.toml", &t)]),
        "web.toml:14:10: check.expect: \"2xx\" is not a status code",
    );
    let t = WEB.replace("rise = 2", "rise = 0");
    assert_error(
        &errors(None, &[("web.toml", &t)]),
        "web.toml:17:8: check.rise: must be a whole number 1..=1000, got 0",
    );
}

#[test]
fn an_empty_file() {
    assert_error(
        &errors(
            None,
            &[("web.toml", WEB), ("empty.toml", "# nothing yet\n\n")],
        ),
        "/etc/ldir/empty.toml: the file is empty",
    );
}

#[test]
fn a_fallback_equal_to_a_real() {
    let t = WEB.replace("192.0.2.50:80", "192.0.2.21:80");
    assert_error(
        &errors(None, &[("web.toml", &t)]),
        "web.toml:9:12: virtual.fallback: 192.0.2.21:80 is also a real of this virtual",
    );
}

#[test]
fn forwarding_the_family_cannot_do() {
    let t = WEB.replace(
        "address = \"192.0.2.13:80\"",
        "address = \"[2001:db8::13]:80\"",
    );
    assert_error(
        &errors(None, &[("web.toml", &t)]),
        "web.toml:21:11: real[0].forwarding: gate forwarding cannot reach an IPv6 real from an IPv4 virtual: use ipip, gue or gre",
    );
    let ok = t.replace("forwarding = \"gate\"", "forwarding = \"ipip\"");
    files(None, &[("web.toml", &ok)]).unwrap();
    let t = WEB.replace("forwarding = \"gate\"", "forwarding = \"gue\"");
    assert_error(
        &errors(None, &[("web.toml", &t)]),
        "virtual.forwarding: gue forwarding needs [virtual] tunnel_port",
    );
}

#[test]
fn service_rules() {
    let cases = [
        (
            "persistent = \"300s\"",
            "netmask = \"255.255.255.0\"\nops = true",
            "virtual.ops: one-packet scheduling is for udp services only",
        ),
        (
            "persistent = \"300s\"",
            "netmask = \"255.0.255.0\"",
            "is not an IPv4 netmask",
        ),
        (
            "persistent = \"300s\"",
            "netmask = 64",
            "an IPv4 service takes a dotted mask",
        ),
        (
            "persistent = \"300s\"",
            "persistent = \"0s\"",
            "virtual.persistent: must be 1s or more",
        ),
        (
            "address = \"192.0.2.100:80\"",
            "address = \"192.0.2.100:80\"\nfwmark = 3",
            "give either address or fwmark, not both",
        ),
        (
            "scheduler = \"wrr\"",
            "scheduler = \"Weighted RR\"",
            "is not a scheduler name",
        ),
    ];
    for (from, to, want) in cases {
        assert_error(&errors(None, &[("web.toml", &WEB.replace(from, to))]), want);
    }
    let no_persist = WEB.replace("persistent = \"300s\"", "netmask = \"255.255.255.0\"");
    assert_error(
        &errors(None, &[("web.toml", &no_persist)]),
        "virtual.netmask: only with persistent",
    );
}

#[test]
fn all_errors_of_all_files_at_once() {
    let a = WEB
        .replace("weight = 10", "weight = -1")
        .replace("rise = 2", "rise = 0");
    let b = "[virtual]\naddress = \"192.0.2.1:80\"\n[[real]]\naddress = \"web1:80\"\n";
    let e = errors(
        Some("[global]\nquiesent = true\n"),
        &[("a.toml", &a), ("b.toml", b)],
    );
    assert_eq!(e.len(), 4, "{e:#?}");
    assert_error(
        &e,
        "ldir.toml:2:1: global.quiesent: unknown field `quiesent`, did you mean `quiescent`?",
    );
    assert_error(&e, "a.toml:17:8: check.rise");
    assert_error(&e, "a.toml:22:10: real[0].weight");
    assert_error(
        &e,
        "b.toml:4:11: real[0].address: \"web1\" is not an IP address",
    );
}

#[test]
fn global_check_takes_only_shared_defaults() {
    let e = errors(Some("[check]\npath = \"/\"\n"), &[("web.toml", WEB)]);
    assert_error(
        &e,
        "ldir.toml:2:8: check.path: not a default every virtual can share",
    );
}

#[test]
fn per_real_check_overrides_cannot_change_virtual_settings() {
    let t = format!("{WEB}[real.check]\nfall = 9\n");
    assert_error(
        &errors(None, &[("web.toml", &t)]),
        "real[1].check.fall: set per virtual",
    );
}

#[test]
fn on_and_off_take_no_probe_fields() {
    let t = WEB.replace("type = \"http\"", "type = \"on\"");
    let e = errors(None, &[("web.toml", &t)]);
    assert_error(
        &e,
        "web.toml:13:8: check.path: type = \"on\" checks nothing: leave path out",
    );
}

#[test]
fn fwmark_reals_need_a_check_port() {
    let t = "[virtual]\nfwmark = 5\n[check]\ntype = \"tcp\"\n[[real]]\naddress = \"192.0.2.2\"\n";
    assert_error(
        &errors(None, &[("m.toml", t)]),
        "m.toml:4:8: check.port: a tcp check needs a port: the reals have no port",
    );
}

#[test]
fn two_files_with_one_name() {
    let b = WEB
        .replace("192.0.2.100:80", "192.0.2.101:80")
        .replace("fallback = ", "name = \"web\"\nfallback = ");
    let e = errors(None, &[("web.toml", WEB), ("zz.toml", &b)]);
    assert_error(
        &e,
        "zz.toml:9:8: virtual.name: the name \"web\" is used by /etc/ldir/web.toml and /etc/ldir/zz.toml",
    );
}

// --- The directory. ---

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ldir-config-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn editor_leftovers_and_hidden_files_are_ignored() {
    let d = tempdir("leftovers");
    std::fs::write(d.join("web.toml"), WEB).unwrap();
    std::fs::write(d.join("web.toml~"), "garbage = ").unwrap();
    std::fs::write(d.join(".web.toml.swp"), "\0\0garbage").unwrap();
    std::fs::write(d.join("README"), "notes").unwrap();
    std::fs::create_dir(d.join("maintenance.toml")).unwrap();
    let c = load(&d).unwrap();
    assert_eq!(c.virtuals.len(), 1);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_directory_without_toml_files() {
    let d = tempdir("none");
    std::fs::write(d.join("web.cf"), "x").unwrap();
    let e = load(&d).unwrap_err().to_string();
    assert!(
        e.contains("no virtual service files (*.toml besides ldir.toml)"),
        "{e}"
    );
    std::fs::write(d.join("ldir.toml"), "").unwrap();
    let e = load(&d).unwrap_err().to_string();
    assert!(e.contains("no virtual service files"), "{e}");
    let e = load(&d.join("missing")).unwrap_err().to_string();
    assert!(
        e.contains("missing: cannot list directory: no such file or directory"),
        "{e}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn an_unreadable_file_or_one_that_disappears() {
    let d = tempdir("unreadable");
    std::fs::write(d.join("web.toml"), WEB).unwrap();
    // A dangling link stands for a file removed between listing and reading (during a reload).
    std::os::unix::fs::symlink(d.join("gone"), d.join("gone.toml")).unwrap();
    let e = load(&d).unwrap_err().to_string();
    assert!(
        e.contains("gone.toml: cannot read: no such file or directory"),
        "{e}"
    );
    std::fs::remove_file(d.join("gone.toml")).unwrap();
    // Unreadable by permission: only meaningful when not root (root reads everything).
    if !nix::unistd::Uid::effective().is_root() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(d.join("secret.toml"), WEB).unwrap();
        std::fs::set_permissions(
            d.join("secret.toml"),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        let e = load(&d).unwrap_err().to_string();
        assert!(
            e.contains("secret.toml: cannot read: permission denied"),
            "{e}"
        );
    }
    let bad = build(
        &d,
        None,
        vec![
            (d.join("web.toml"), Ok(WEB.into())),
            (d.join("x.toml"), read_text(&d.join("x.toml"))),
        ],
    )
    .unwrap_err();
    assert!(
        bad.to_string()
            .contains("x.toml: cannot read: no such file or directory"),
        "{bad}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn hostile_input_never_panics() {
    for t in [
        "[virtual]\naddress = \"\"\n",
        "[[virtual]]\n",
        "real = 5\n[virtual]\nfwmark = -1\n",
        "[virtual]\nfwmark=1\n[[real]]\naddress=\"::->ffff::\"\n",
        "\u{0}\u{1}",
        "[check]\ntype=1\n[virtual]\nfwmark=1\n",
    ] {
        let _ = files(
            Some("[sync]\ninterface = \"this-name-is-too-long\"\n"),
            &[("x.toml", t)],
        );
    }
}

#[test]
fn a_cached_load_reads_again_only_what_changed() {
    let d = tempdir("cache");
    std::fs::write(d.join("web.toml"), WEB).unwrap();
    let other = "[virtual]\naddress = \"192.0.2.101:80\"\n[[real]]\naddress = \"192.0.2.13\"\n";
    std::fs::write(d.join("other.toml"), other).unwrap();
    let mut cache = Cache::default();
    let first = load_cached(&d, &mut cache).unwrap();
    std::fs::write(
        d.join("other.toml"),
        format!("{other}[[real]]\naddress = \"192.0.2.14\"\n"),
    )
    .unwrap();
    let second = load_cached(&d, &mut cache).unwrap();
    assert_eq!(second, load(&d).unwrap(), "the same as a full load");
    let probe = |c: &Config, i: usize| c.virtuals[i].reals[0].probe.clone().unwrap();
    // other.toml sorts first.
    assert_eq!(second.virtuals[0].reals.len(), 2);
    assert!(
        Arc::ptr_eq(&probe(&first, 1), &probe(&second, 1)),
        "web.toml reused from the cache"
    );
    assert!(
        !Arc::ptr_eq(&probe(&first, 0), &probe(&second, 0)),
        "other.toml read again"
    );
    // A changed ldir.toml changes every file's defaults: all read again.
    std::fs::write(d.join("ldir.toml"), "[check]\ntimeout = \"3s\"\n").unwrap();
    let third = load_cached(&d, &mut cache).unwrap();
    assert!(!Arc::ptr_eq(&probe(&second, 1), &probe(&third, 1)));
    assert_eq!(
        third.virtuals[0].reals[0]
            .probe
            .as_ref()
            .unwrap()
            .spec
            .timeout
            .as_std(),
        Duration::from_secs(3)
    );
    // A file that turns invalid is an error, and the next load after its repair is right.
    std::fs::write(
        d.join("web.toml"),
        WEB.replace("weight = 10", "weight = -1"),
    )
    .unwrap();
    assert!(load_cached(&d, &mut cache).is_err());
    std::fs::write(d.join("web.toml"), WEB).unwrap();
    assert_eq!(load_cached(&d, &mut cache).unwrap(), load(&d).unwrap());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_load_told_what_changed_reads_only_those_names() {
    let d = tempdir("changed");
    let v = |n: u8, reals: &str| {
        format!("[virtual]\naddress = \"192.0.2.{n}:80\"\n[check]\ntype = \"on\"\n{reals}")
    };
    let real = |a: &str| format!("[[real]]\naddress = \"{a}\"\n");
    std::fs::write(d.join("a.toml"), v(101, &real("192.0.2.13"))).unwrap();
    std::fs::write(d.join("b.toml"), v(102, &real("192.0.2.13"))).unwrap();
    let names = |ns: &[&str]| -> std::collections::BTreeSet<std::ffi::OsString> {
        ns.iter().map(|n| (*n).into()).collect()
    };
    let mut cache = Cache::default();
    // Without an earlier load it reads everything.
    let first = load_changed(&d, &mut cache, &names(&[])).unwrap();
    assert_eq!(first, load(&d).unwrap());
    // a.toml named, b.toml changed behind its back: only a.toml's change is seen.
    std::fs::write(
        d.join("a.toml"),
        v(101, &(real("192.0.2.13") + &real("192.0.2.14"))),
    )
    .unwrap();
    std::fs::write(
        d.join("b.toml"),
        v(102, &(real("192.0.2.13") + &real("192.0.2.15"))),
    )
    .unwrap();
    let second = load_changed(&d, &mut cache, &names(&["a.toml"])).unwrap();
    assert_eq!(second.virtuals[0].reals.len(), 2, "a.toml read again");
    assert_eq!(
        second.virtuals[1].reals.len(),
        1,
        "b.toml not read: it was not named"
    );
    // A new file and a removed one, by name; editor leftovers named are ignored.
    std::fs::write(d.join("c.toml"), v(103, &real("192.0.2.13"))).unwrap();
    std::fs::remove_file(d.join("a.toml")).unwrap();
    std::fs::write(d.join(".c.toml.swp"), "\0garbage").unwrap();
    let third = load_changed(&d, &mut cache, &names(&["a.toml", "c.toml", ".c.toml.swp"])).unwrap();
    let files: Vec<String> = third
        .virtuals
        .iter()
        .map(|v| v.file.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["b.toml", "c.toml"]);
    // ldir.toml named: everything is read again (b.toml's change shows now).
    std::fs::write(d.join("ldir.toml"), "[check]\ntimeout = \"3s\"\n").unwrap();
    let fourth = load_changed(&d, &mut cache, &names(&["ldir.toml"])).unwrap();
    assert_eq!(fourth, load(&d).unwrap());
    assert_eq!(fourth.virtuals[0].reals.len(), 2);
    // An invalid file is read again at every load until it is repaired, named or not.
    std::fs::write(
        d.join("c.toml"),
        "[virtual]\naddress = \"192.0.2.103:80\"\nweight = 1\n",
    )
    .unwrap();
    assert!(load_changed(&d, &mut cache, &names(&["c.toml"])).is_err());
    std::fs::write(d.join("c.toml"), v(103, &real("192.0.2.13"))).unwrap();
    assert_eq!(
        load_changed(&d, &mut cache, &names(&[])).unwrap(),
        load(&d).unwrap()
    );
    // The last file gone: the same error as a full load.
    for f in ["b.toml", "c.toml"] {
        std::fs::remove_file(d.join(f)).unwrap();
    }
    let e = load_changed(&d, &mut cache, &names(&["b.toml", "c.toml"])).unwrap_err();
    assert!(e.to_string().contains("no virtual service files"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// `ldir.toml` with `[sync]` and `extra` lines in it, and the web example.
fn sync_files(extra: &str) -> Result<Config, ConfigErrors> {
    files(
        Some(&format!("[sync]\ninterface = \"eth1\"\n{extra}")),
        &[("web.toml", WEB)],
    )
}

fn sync_pairs(extra: &str) -> Vec<(&'static str, String)> {
    match sync_files(extra) {
        Ok(c) => c.sync.unwrap().sysctls.pairs(),
        Err(e) => panic!("{extra:?} refused: {e}"),
    }
}

/// The errors of `[sync]` with `extra` (its first line is line 3 of ldir.toml).
fn sync_errors(extra: &str) -> Vec<String> {
    match sync_files(extra) {
        Ok(c) => panic!("accepted: {extra:?}: {:?}", c.sync),
        Err(e) => e.errors().iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn sync_sysctls_are_read_in_order() {
    let all = "version = 0\nthreshold = 5\nperiod = 100\nrefresh_period = \"10s\"\nretries = 2\n\
               qlen_max = 4096\nsock_size = 1048576\nports = 4\npersist_mode = true\n";
    let pairs = sync_pairs(all);
    let want: Vec<(&str, String)> = [
        ("sync_version", "0"),
        ("sync_threshold", "5 100"),
        ("sync_refresh_period", "10"),
        ("sync_retries", "2"),
        ("sync_qlen_max", "4096"),
        ("sync_sock_size", "1048576"),
        ("sync_ports", "4"),
        ("sync_persist_mode", "1"),
    ]
    .into_iter()
    .map(|(n, v)| (n, v.to_string()))
    .collect();
    assert_eq!(pairs, want);
    // Nothing set: nothing written; the daemon's settings are as before.
    let c = sync_files("sync_id = 7\n").unwrap();
    let sync = c.sync.unwrap();
    assert!(sync.sysctls.pairs().is_empty());
    assert_eq!(sync.sysctls, SyncSysctls::default());
    assert_eq!(sync.daemon(DaemonRole::Master).sync_id, 7);
    assert_eq!(
        sync_pairs("persist_mode = false\n"),
        [("sync_persist_mode", "0".to_string())]
    );
}

#[test]
fn sync_values_at_the_edges_of_their_ranges_are_taken() {
    for (extra, name, value) in [
        ("version = 0\n", "sync_version", "0"),
        ("version = 1\n", "sync_version", "1"),
        ("retries = 0\n", "sync_retries", "0"),
        ("retries = 3\n", "sync_retries", "3"),
        ("qlen_max = 1\n", "sync_qlen_max", "1"),
        ("sock_size = 0\n", "sync_sock_size", "0"),
        ("ports = 1\n", "sync_ports", "1"),
        ("ports = 64\n", "sync_ports", "64"),
        ("refresh_period = \"0s\"\n", "sync_refresh_period", "0"),
        ("refresh_period = \"2m\"\n", "sync_refresh_period", "120"),
        // The one of the pair left out keeps the kernel's default (3 50).
        ("threshold = 49\n", "sync_threshold", "49 50"),
        ("threshold = 0\n", "sync_threshold", "0 50"),
        ("period = 4\n", "sync_threshold", "3 4"),
        ("period = 0\n", "sync_threshold", "3 0"),
        // A period of 0 syncs once, at any threshold.
        ("threshold = 1000\nperiod = 0\n", "sync_threshold", "1000 0"),
        ("threshold = 0\nperiod = 1\n", "sync_threshold", "0 1"),
    ] {
        assert_eq!(sync_pairs(extra), [(name, value.to_string())], "{extra:?}");
    }
}

#[test]
fn each_bad_sync_value_is_an_error_at_its_place() {
    for (extra, want) in [
        (
            "version = 2\n",
            "ldir.toml:3:11: sync.version: must be 0 or 1, got 2",
        ),
        (
            "version = -1\n",
            "ldir.toml:3:11: sync.version: must be 0 or 1, got -1",
        ),
        (
            "threshold = -1\n",
            "ldir.toml:3:13: sync.threshold: must be 0..=2147483647, got -1",
        ),
        (
            "period = -5\n",
            "ldir.toml:3:10: sync.period: must be 0..=2147483647, got -5",
        ),
        (
            "period = 3000000000\n",
            "ldir.toml:3:10: sync.period: must be 0..=2147483647, got 3000000000",
        ),
        (
            "threshold = 50\n",
            "ldir.toml:3:13: sync.threshold: must be less than period, which is the kernel's default 50 when not set, got 50",
        ),
        (
            "period = 3\n",
            "ldir.toml:3:10: sync.period: must be more than threshold, which is the kernel's default 3 when not set, or 0 to sync once, got 3",
        ),
        (
            "threshold = 10\nperiod = 10\n",
            "ldir.toml:4:10: sync.period: must be more than threshold (10), or 0 to sync once, got 10",
        ),
        (
            "threshold = 20\nperiod = 10\n",
            "ldir.toml:4:10: sync.period: must be more than threshold (20)",
        ),
        (
            "refresh_period = \"1500ms\"\n",
            "ldir.toml:3:18: sync.refresh_period: must be whole seconds",
        ),
        (
            "refresh_period = \"720h\"\n",
            "ldir.toml:3:18: sync.refresh_period: must be at most 2147483s",
        ),
        (
            "retries = 4\n",
            "ldir.toml:3:11: sync.retries: must be 0..=3, got 4",
        ),
        (
            "retries = -1\n",
            "ldir.toml:3:11: sync.retries: must be 0..=3, got -1",
        ),
        (
            "qlen_max = 0\n",
            "ldir.toml:3:12: sync.qlen_max: must be 1..=4294967295 (messages), got 0",
        ),
        (
            "sock_size = -1\n",
            "ldir.toml:3:13: sync.sock_size: must be 0..=2147483647 (bytes; 0: the system's default), got -1",
        ),
        (
            "ports = 0\n",
            "ldir.toml:3:9: sync.ports: must be a power of two from 1 to 64 (1, 2, 4, 8, 16, 32 or 64), got 0",
        ),
        (
            "ports = 3\n",
            "ldir.toml:3:9: sync.ports: must be a power of two",
        ),
        (
            "ports = 128\n",
            "ldir.toml:3:9: sync.ports: must be a power of two",
        ),
        (
            "ports = -2\n",
            "ldir.toml:3:9: sync.ports: must be a power of two",
        ),
        ("persist_mode = 1\n", "ldir.toml:3:16: sync.persist_mode"),
        ("version = \"1\"\n", "ldir.toml:3:11: sync.version"),
    ] {
        let e = sync_errors(extra);
        assert_error(&e, want);
        assert_eq!(e.len(), 1, "{extra:?}: {e:#?}");
    }
}

#[test]
fn every_sync_error_is_reported_at_once() {
    let e = errors(
        Some(
            "[sync]\ninterface = \"this-name-is-too-long\"\ngroup = \"192.0.2.1\"\nversion = 3\n\
             threshold = 9\nperiod = 9\nretries = 9\nports = 5\nrefresh_period = \"0.5s\"\n\
             qlen_max = 0\nsock_size = -1\n",
        ),
        &[("web.toml", WEB)],
    );
    assert_eq!(e.len(), 9, "{e:#?}");
    for field in [
        "sync.interface",
        "sync.group",
        "sync.version",
        "sync.period",
        "sync.retries",
        "sync.ports",
        "sync.refresh_period",
        "sync.qlen_max",
        "sync.sock_size",
    ] {
        assert_error(&e, &format!(": {field}: "));
    }
    // `ldir check` says the same, every one of them.
    let d = tempdir("sync-check");
    std::fs::write(d.join("web.toml"), WEB).unwrap();
    std::fs::write(
        d.join("ldir.toml"),
        "[sync]\ninterface = \"eth1\"\nports = 3\nretries = 4\n",
    )
    .unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = crate::cli::check(&d, &mut out, &mut err);
    let err = String::from_utf8(err).unwrap();
    assert_eq!(code, common::daemon::Exit::Usage, "{err}");
    assert!(
        err.contains("ldir.toml:3:9: sync.ports: must be a power of two"),
        "{err}"
    );
    assert!(
        err.contains("ldir.toml:4:11: sync.retries: must be 0..=3, got 4"),
        "{err}"
    );
    assert!(err.contains("2 error(s)"), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}
