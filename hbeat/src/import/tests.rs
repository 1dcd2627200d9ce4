//! Every ha.cf directive, haresources resource and authkeys method the converter knows, each
//! with what it becomes; converted files are read back by hbeat's own config parser.

use super::*;
use crate::config::{Config, Link};

const TWO_NODES: &str = "node lb1\nnode lb2\nucast eth1 192.0.2.11\nucast eth1 192.0.2.12\n";
const SIGNED: &str = "auth 1\n1 sha1 secret\n";

fn opts() -> Options {
    Options {
        node: "lb1".into(),
        addresses: vec!["192.0.2.11".parse().unwrap()],
        script_dir: None,
        key_file: "/etc/hbeat/authkey".into(),
    }
}

fn conv(ha_cf: &str, haresources: &str) -> Conversion {
    convert(ha_cf, haresources, SIGNED, &opts())
}

fn config(c: &Conversion) -> Config {
    assert!(c.usable, "{:?}", c.warnings);
    match crate::config::parse("hbeat.toml", &c.toml) {
        Ok(cfg) => cfg,
        Err(e) => panic!("{e:?}\n{}", c.toml),
    }
}

/// The warning at `source:line` about `what` whose message contains `words`.
fn warned(c: &Conversion, source: Source, line: usize, what: &str, words: &str) -> bool {
    c.warnings.iter().any(|w| {
        w.source == source && w.line == line && w.what == what && w.message.contains(words)
    })
}

fn resources(c: &Config) -> Vec<Vec<String>> {
    c.groups
        .iter()
        .map(|g| g.resources.iter().map(ToString::to_string).collect())
        .collect()
}

#[test]
fn nodes_become_this_node_and_peers_lowercased() {
    let c = conv(
        "node LB1 lb2\nnode lb3\nnode lb2\nucast eth1 192.0.2.12\n",
        "",
    );
    let cfg = config(&c);
    assert_eq!(cfg.node, "lb1");
    assert_eq!(cfg.peers, ["lb2", "lb3"]);
    assert!(warned(&c, Source::HaCf, 3, "node", "listed twice"));
    assert_eq!(cfg.cluster, "linux-ha");
    let c = conv(&format!("{TWO_NODES}cluster web-pair\n"), "");
    assert_eq!(config(&c).cluster, "web-pair");
}

#[test]
fn unknown_node_no_node_or_no_peer_is_unusable() {
    let mut o = opts();
    o.node = "other".into();
    let c = convert(TWO_NODES, "", SIGNED, &o);
    assert!(!c.usable);
    assert!(warned(&c, Source::HaCf, 0, "node", "pass --node"));
    let c = conv("ucast eth1 192.0.2.12\n", "");
    assert!(!c.usable);
    assert!(warned(&c, Source::HaCf, 0, "node", "no `node` line"));
    let c = conv("node lb1\nucast eth1 192.0.2.12\n", "");
    assert!(!c.usable);
    let c = conv("node lb1 lb2\n", "");
    assert!(!c.usable);
    assert!(warned(&c, Source::HaCf, 0, "media", "no heartbeat medium"));
}

#[test]
fn timings_are_heartbeats_with_its_defaults() {
    // Nothing set: keepalive 1s, deadtime 30s, warntime 15s, initdead = deadtime, made longer.
    let c = conv(TWO_NODES, "");
    let cfg = config(&c);
    assert_eq!(cfg.keepalive, Duration::from_secs(1));
    assert_eq!(cfg.deadtime, Duration::from_secs(30));
    assert_eq!(cfg.warntime, Duration::from_secs(15));
    assert_eq!(cfg.initdead, Duration::from_secs(31));
    assert!(warned(
        &c,
        Source::HaCf,
        0,
        "initdead",
        "heartbeat's default"
    ));
    // Seconds, milliseconds, decimals; initdead 2 x deadtime when deadtime is 6..=10s.
    let c = conv(
        &format!("{TWO_NODES}keepalive 500ms\ndeadtime 8\nwarntime 1.5\n"),
        "",
    );
    let cfg = config(&c);
    assert_eq!(cfg.keepalive, Duration::from_millis(500));
    assert_eq!(cfg.deadtime, Duration::from_secs(8));
    assert_eq!(cfg.warntime, Duration::from_millis(1500));
    assert_eq!(cfg.initdead, Duration::from_secs(16));
    // A short deadtime: initdead 12s.
    let c = conv(&format!("{TWO_NODES}keepalive 200ms\ndeadtime 2\n"), "");
    assert_eq!(config(&c).initdead, Duration::from_secs(12));
    // Explicit initdead kept.
    let c = conv(&format!("{TWO_NODES}initdead 120\n"), "");
    assert_eq!(config(&c).initdead, Duration::from_secs(120));
    // Not a time: warned, default kept.
    let c = conv(&format!("{TWO_NODES}keepalive soon\n"), "");
    assert!(warned(&c, Source::HaCf, 5, "keepalive", "not a time"));
    assert_eq!(config(&c).keepalive, Duration::from_secs(1));
    // What heartbeat refused is said, and hbeat refuses it too.
    let c = conv(&format!("{TWO_NODES}keepalive 2\ndeadtime 3\n"), "");
    assert!(warned(&c, Source::HaCf, 6, "deadtime", "more than twice"));
    assert!(crate::config::parse("hbeat.toml", &c.toml).is_err());
}

#[test]
fn ha_time_units() {
    assert_eq!(ha_time("2"), Some(Duration::from_secs(2)));
    assert_eq!(ha_time("1500ms"), Some(Duration::from_millis(1500)));
    assert_eq!(ha_time("0.5"), Some(Duration::from_millis(500)));
    assert_eq!(ha_time("3s"), Some(Duration::from_secs(3)));
    assert_eq!(ha_time("0"), None);
    assert_eq!(ha_time("-1"), None);
    assert_eq!(ha_time("x"), None);
    assert_eq!(ha_time(""), None);
}

#[test]
fn auto_failback_on_off_legacy_and_nice_failback() {
    for (line, want, warn) in [
        ("auto_failback on", true, false),
        ("auto_failback off", false, false),
        ("auto_failback yes", true, false),
        ("auto_failback legacy", true, true),
        ("nice_failback on", false, true),
        ("nice_failback off", true, true),
    ] {
        let c = conv(&format!("{TWO_NODES}{line}\n"), "");
        assert_eq!(config(&c).auto_failback, want, "{line}");
        let directive = line.split(' ').next().unwrap();
        assert_eq!(
            c.warnings
                .iter()
                .any(|w| w.line == 5 && (w.what == directive || w.what == "auto_failback")),
            warn,
            "{line}: {:?}",
            c.warnings
        );
    }
    let c = conv(TWO_NODES, "");
    assert!(config(&c).auto_failback);
    assert!(warned(&c, Source::HaCf, 0, "auto_failback", "legacy"));
}

#[test]
fn ucast_skips_own_entry_and_binds_to_it() {
    let c = conv(TWO_NODES, "");
    let cfg = config(&c);
    assert_eq!(
        cfg.links,
        [Link::Udp {
            bind: "192.0.2.11:694".parse().unwrap(),
            peer: "192.0.2.12:694".parse().unwrap(),
        }]
    );
    // Seen from the other node with the same file.
    let mut o = opts();
    o.node = "lb2".into();
    o.addresses = vec!["192.0.2.12".parse().unwrap()];
    let c = convert(TWO_NODES, "", SIGNED, &o);
    assert_eq!(
        config(&c).links,
        [Link::Udp {
            bind: "192.0.2.12:694".parse().unwrap(),
            peer: "192.0.2.11:694".parse().unwrap(),
        }]
    );
}

#[test]
fn ucast_without_own_address_gets_a_placeholder_check_refuses() {
    let mut o = opts();
    o.addresses.clear();
    let c = convert("node lb1 lb2\nucast eth1 192.0.2.12\n", "", SIGNED, &o);
    assert!(c.usable);
    assert!(warned(&c, Source::HaCf, 2, "ucast", "--address"));
    assert!(
        c.toml.contains("bind = \"THIS-NODE-ADDRESS:694\""),
        "{}",
        c.toml
    );
    let e = crate::config::parse("hbeat.toml", &c.toml).unwrap_err();
    assert!(format!("{e:?}").contains("bind"), "{e:?}");
    // One address given: the bind of every ucast link.
    o.addresses = vec!["192.0.2.11".parse().unwrap()];
    let c = convert("node lb1 lb2\nucast eth1 192.0.2.12\n", "", SIGNED, &o);
    assert!(
        matches!(config(&c).links[0], Link::Udp { bind, .. } if bind.ip().to_string() == "192.0.2.11")
    );
}

#[test]
fn ucast_host_names_and_extra_words_are_warned() {
    let c = conv(
        &format!("{TWO_NODES}ucast eth2 lb2.example.org\nucast eth1 192.0.2.12 192.0.2.13\n"),
        "",
    );
    assert!(warned(&c, Source::HaCf, 5, "ucast", "not resolved"));
    assert!(warned(
        &c,
        Source::HaCf,
        6,
        "ucast",
        "only the first address"
    ));
}

#[test]
fn udpport_applies_to_media_after_it_and_ucast_keeps_its_first() {
    let c = conv(
        "node lb1 lb2\nudpport 1694\nbcast eth0 eth2\nucast eth1 192.0.2.12\nudpport 2694\n\
         ucast eth3 198.18.0.12\nbcast eth4\n",
        "",
    );
    let cfg = config(&c);
    assert_eq!(
        cfg.links,
        [
            Link::Bcast {
                dev: "eth0".into(),
                port: 1694
            },
            Link::Bcast {
                dev: "eth2".into(),
                port: 1694
            },
            Link::Udp {
                bind: "192.0.2.11:1694".parse().unwrap(),
                peer: "192.0.2.12:1694".parse().unwrap()
            },
            Link::Udp {
                bind: "192.0.2.11:1694".parse().unwrap(),
                peer: "198.18.0.12:1694".parse().unwrap()
            },
            Link::Bcast {
                dev: "eth4".into(),
                port: 1694
            },
        ]
    );
    assert!(warned(&c, Source::HaCf, 5, "udpport", "after media"));
}

#[test]
fn mcast_and_serial_with_baud() {
    let c = conv(
        "node lb1 lb2\nbaud 115200\nserial /dev/ttyS0 /dev/ttyS1\nmcast eth0 225.0.0.1 694 1 0\n\
         mcast eth1 239.0.0.2 1694 2 1\nmcast eth0 192.0.2.1 694 1 0\nserial ttyS2\n",
        "",
    );
    let cfg = config(&c);
    assert_eq!(
        cfg.links,
        [
            Link::Serial {
                device: "/dev/ttyS0".into(),
                baud: 115_200
            },
            Link::Serial {
                device: "/dev/ttyS1".into(),
                baud: 115_200
            },
            Link::Mcast {
                dev: "eth0".into(),
                group: "225.0.0.1:694".parse().unwrap(),
                ttl: 1
            },
            Link::Mcast {
                dev: "eth1".into(),
                group: "239.0.0.2:1694".parse().unwrap(),
                ttl: 2
            },
        ]
    );
    assert!(warned(&c, Source::HaCf, 5, "mcast", "loop 1"));
    assert!(warned(
        &c,
        Source::HaCf,
        6,
        "mcast",
        "not an IPv4 multicast group"
    ));
    assert!(warned(&c, Source::HaCf, 7, "serial", "not a device path"));
    // Default speed 19200.
    let c = conv("node lb1 lb2\nserial /dev/ttyS0\n", "");
    assert!(matches!(
        config(&c).links[0],
        Link::Serial { baud: 19200, .. }
    ));
    let c = conv("node lb1 lb2\nbaud 1234\nserial /dev/ttyS0\n", "");
    assert!(warned(&c, Source::HaCf, 2, "baud", "not a serial speed"));
}

#[test]
fn ping_targets_and_what_has_no_equivalent() {
    let text = format!(
        "{TWO_NODES}ping 192.0.2.254 198.18.0.254\nping 192.0.2.254 gw.example.org\n\
         ping_group g 192.0.2.1 192.0.2.2\ndeadping 30\nrespawn hacluster /usr/lib/heartbeat/ipfail\n\
         respawn root /usr/sbin/mydaemon\nstonith baytech /etc/ha.d/conf/stonith.baytech\n\
         stonith_host * baytech 192.0.2.3 login password\nwatchdog /dev/watchdog\n\
         logfacility local0\nlogfile /var/log/ha-log\ndebugfile /var/log/ha-debug\n\
         apiauth ipfail gid=haclient uid=hacluster\ncrm on\nhopfudge 1\nmcast6 eth0 ff02::1 694 1 0\n\
         frobnicate 1\n"
    );
    let c = conv(&text, "");
    let cfg = config(&c);
    let ping = cfg.ping.expect("[ping]");
    assert_eq!(
        ping.targets,
        [
            "192.0.2.254".parse::<IpAddr>().unwrap(),
            "198.18.0.254".parse().unwrap(),
            "192.0.2.1".parse().unwrap(),
            "192.0.2.2".parse().unwrap()
        ]
    );
    for (line, what, words) in [
        (6, "ping", "not resolved"),
        (
            7,
            "ping_group",
            "(192.0.2.1 192.0.2.2) became [ping] targets",
        ),
        (8, "deadping", "[ping] timeout"),
        (9, "respawn", "ipfail's job"),
        (10, "respawn", "systemd service"),
        (11, "stonith", "fence"),
        (12, "stonith_host", "fence"),
        (13, "watchdog", "WatchdogSec"),
        (14, "logfacility", "stderr"),
        (15, "logfile", "stderr"),
        (16, "debugfile", "stderr"),
        (17, "apiauth", "socket_group"),
        (18, "crm", "ignored haresources"),
        (19, "hopfudge", "no equivalent"),
        (20, "mcast6", "by hand"),
        (21, "frobnicate", "unknown directive"),
    ] {
        assert!(
            warned(&c, Source::HaCf, line, what, words),
            "{line} {what}: {:?}",
            c.warnings
        );
    }
}

#[test]
fn control_characters_never_reach_a_toml_comment() {
    let c = conv(
        &format!("{TWO_NODES}serial /dev/ttyS0,\u{7}\n"),
        "lb1 httpd ldirectord::\u{1}\n",
    );
    assert!(c.toml.contains("serial /dev/ttyS0,?"), "{}", c.toml);
    assert!(c.toml.contains("ldirectord::? left out"), "{}", c.toml);
    config(&c);
}

#[test]
fn comments_and_commas() {
    let c = conv(
        "# a comment\nnode lb1, lb2 # both\n  ucast eth1 192.0.2.12  # peer\n",
        "",
    );
    let cfg = config(&c);
    assert_eq!(cfg.peers, ["lb2"]);
    assert_eq!(cfg.links.len(), 1);
}

#[test]
fn ipaddr_resources_become_fakeip_hold() {
    let c = conv(
        TWO_NODES,
        "lb1 IPaddr::192.0.2.100/24/eth0 IPaddr2::192.0.2.101/25/eth1 \
         192.0.2.102/255.255.255.0/eth0/192.0.2.255 IPaddr::192.0.2.103/24/eth0:1\n",
    );
    let cfg = config(&c);
    assert_eq!(
        resources(&cfg),
        [[
            "armed:fakeip hold 192.0.2.100/24 dev eth0",
            "armed:fakeip hold 192.0.2.101/25 dev eth1",
            "armed:fakeip hold 192.0.2.102/24 dev eth0",
            "armed:fakeip hold 192.0.2.103/24 dev eth0",
        ]]
    );
    assert_eq!(cfg.groups[0].name, "ip-192.0.2.100");
    assert_eq!(cfg.groups[0].preferred(), "lb1");
    assert!(warned(
        &c,
        Source::Haresources,
        1,
        "192.0.2.102/255.255.255.0/eth0/192.0.2.255",
        "broadcast"
    ));
    assert!(warned(
        &c,
        Source::Haresources,
        1,
        "IPaddr::192.0.2.103/24/eth0:1",
        "alias label"
    ));
}

#[test]
fn ipaddr_without_nic_or_prefix_is_a_fixme_check_refuses() {
    for (spec, want) in [
        (
            "IPaddr::192.0.2.3",
            "FIXME armed:fakeip hold 192.0.2.3/PREFIX dev NIC",
        ),
        (
            "192.0.2.3/24",
            "FIXME armed:fakeip hold 192.0.2.3/24 dev NIC",
        ),
        (
            "IPaddr2::192.0.2.3/24/192.0.2.255",
            "FIXME armed:fakeip hold 192.0.2.3/24 dev NIC",
        ),
    ] {
        let c = conv(TWO_NODES, &format!("lb1 {spec} httpd\n"));
        assert!(
            c.toml.contains(&format!("\"{want}\"")),
            "{spec}: {}",
            c.toml
        );
        assert!(warned(
            &c,
            Source::Haresources,
            1,
            spec,
            "remove the leading FIXME"
        ));
        // The file parses, and hbeat check's resource lookup fails on the FIXME word.
        let cfg = config(&c);
        let problems = crate::check::resources(&cfg);
        assert!(
            problems.iter().any(|p| p.resource.starts_with("FIXME")),
            "{problems:?}"
        );
    }
    let c = conv(TWO_NODES, "lb1 IPaddr::192.0.2.300/24/eth0 httpd\n");
    assert!(warned(
        &c,
        Source::Haresources,
        1,
        "IPaddr::192.0.2.300/24/eth0",
        "dropped"
    ));
    assert_eq!(resources(&config(&c)), [["script:httpd"]]);
}

#[test]
fn scripts_keep_their_arguments_and_are_found_by_name_or_in_a_dir() {
    let c = conv(
        TWO_NODES,
        "lb1 192.0.2.100/24/eth0 Filesystem::/dev/sda1::/data1::ext2 httpd\n",
    );
    assert_eq!(
        resources(&config(&c)),
        [[
            "armed:fakeip hold 192.0.2.100/24 dev eth0",
            "script:Filesystem::/dev/sda1::/data1::ext2",
            "script:httpd",
        ]]
    );
    let mut o = opts();
    o.script_dir = Some("/opt/ha/resource.d".into());
    let c = convert(
        TWO_NODES,
        "lb1 httpd LVSSyncDaemonSwap::master\n",
        SIGNED,
        &o,
    );
    assert_eq!(
        resources(&config(&c)),
        [[
            "script:/opt/ha/resource.d/httpd",
            "script:/opt/ha/resource.d/LVSSyncDaemonSwap::master",
        ]]
    );
    let c = conv(TWO_NODES, "lb1 httpd bad::::arg\n");
    assert!(warned(&c, Source::Haresources, 1, "bad::::arg", "dropped"));
}

#[test]
fn ldirectord_is_dropped_with_a_pointer_to_ldir_import() {
    let c = conv(
        TWO_NODES,
        "lb1 IPaddr::192.0.2.3/24/eth0 ldirectord::www\nlb2 ldirectord\n",
    );
    assert!(warned(
        &c,
        Source::Haresources,
        1,
        "ldirectord::www",
        "ldir import /etc/ha.d/www"
    ));
    assert!(warned(
        &c,
        Source::Haresources,
        2,
        "ldirectord",
        "ldir import /etc/ha.d/ldirectord.cf"
    ));
    // The second group had nothing else: skipped.
    assert!(warned(
        &c,
        Source::Haresources,
        2,
        "ldirectord",
        "group is skipped"
    ));
    assert!(
        c.toml.contains("# hbeat import: ldirectord::www left out"),
        "{}",
        c.toml
    );
    let cfg = config(&c);
    assert_eq!(
        resources(&cfg),
        [["armed:fakeip hold 192.0.2.3/24 dev eth0"]]
    );
}

#[test]
fn groups_continue_over_backslashes_and_get_unique_names() {
    let c = conv(
        TWO_NODES,
        "# comment\nlb1 httpd \\\n    192.0.2.5/24/eth0 \\\n  mysql\n\nLB2 httpd\nlb3 httpd\n",
    );
    let cfg = config(&c);
    let names: Vec<&str> = cfg.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["httpd", "httpd-2"]);
    assert_eq!(
        resources(&cfg)[0],
        [
            "script:httpd",
            "armed:fakeip hold 192.0.2.5/24 dev eth0",
            "script:mysql"
        ]
    );
    assert_eq!(cfg.groups[1].preferred(), "lb2");
    assert!(warned(&c, Source::Haresources, 7, "lb3", "not a node"));
}

#[test]
fn authkeys_secrets_become_derived_keys_with_the_signing_one_first() {
    let text = "auth 3\n1 crc\n2 sha1 HI!\n3 md5 Hello!\n";
    let c = convert(TWO_NODES, "", text, &opts());
    let key = c.key.clone().expect("a key file");
    let ring = crate::keys::KeyRing::parse(&key, Path::new("authkey")).unwrap();
    assert_eq!(ring.ids().collect::<Vec<_>>(), [3, 2]);
    assert!(warned(&c, Source::Authkeys, 2, "crc", "no secret"));
    // Deterministic: SHA-256("hbeat-import:" + secret), written as hex.
    let mut h = Sha256::new();
    h.update(b"hbeat-import:Hello!");
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert!(key.contains(&format!("3 {hex}")), "{key}");
    assert_eq!(convert(TWO_NODES, "", text, &opts()).key.unwrap(), key);
}

#[test]
fn authkeys_without_a_usable_signing_secret_gives_no_key() {
    for (text, line, words) in [
        ("auth 1\n1 crc\n2 sha1 x\n", 1, "no usable secret"),
        ("#auth 1\n#1 crc\n", 0, "no `auth N` line"),
        ("auth 2\n2 sha256 x\n", 1, "no usable secret"),
    ] {
        let c = convert(TWO_NODES, "", text, &opts());
        assert!(c.key.is_none(), "{text}");
        assert!(c.usable);
        assert!(
            warned(&c, Source::Authkeys, line, "auth", words),
            "{text}: {:?}",
            c.warnings
        );
    }
}

#[test]
fn group_names_from_first_resources() {
    let mut taken = BTreeSet::new();
    assert_eq!(
        group_name("IPaddr::192.0.2.1/24/eth0", &mut taken),
        "ip-192.0.2.1"
    );
    assert_eq!(group_name("192.0.2.1", &mut taken), "ip-192.0.2.1-2");
    assert_eq!(
        group_name("Filesystem::/dev/sda1", &mut taken),
        "Filesystem"
    );
    assert_eq!(group_name("_odd", &mut taken), "g_odd");
}
