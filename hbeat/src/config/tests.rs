use std::path::PathBuf;
use std::time::Duration;

use super::*;

/// Issue 12's example, as written (the pair example of `contrib/examples/pair/` is newer): it must parse.
const EXAMPLE: &str = include_str!("fixtures/issue-12-example.toml");

/// A minimal valid file to vary.
const BASE: &str = r#"node = "lb1"
cluster = "lb"
[[peer]]
name = "lb2"
[[link]]
udp = { bind = "192.0.2.11:694", peer = "192.0.2.12:694" }
[[group]]
name = "web"
preferred = "lb1"
resources = ["sleep 1000"]
"#;

fn ok(text: &str) -> Config {
    match parse("hbeat.toml", text) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}\n--- text:\n{text}"),
    }
}

fn errors(text: &str) -> Vec<String> {
    match parse("hbeat.toml", text) {
        Ok(c) => panic!("expected errors, got {c:?}\n--- text:\n{text}"),
        Err(e) => e.errors().iter().map(ToString::to_string).collect(),
    }
}

#[track_caller]
fn assert_error(errors: &[String], wanted: &str) {
    assert!(
        errors.iter().any(|e| e.contains(wanted)),
        "no error containing {wanted:?} in:\n{}",
        errors.join("\n")
    );
}

#[test]
fn the_issue_example_parses_as_written() {
    let c = ok(EXAMPLE);
    assert_eq!(c.node, "lb1");
    assert_eq!(c.cluster, "lb");
    assert_eq!(c.key_file, PathBuf::from("/etc/hbeat/authkey"));
    assert_eq!(c.keepalive, Duration::from_millis(20));
    assert_eq!(c.warntime, Duration::from_millis(60));
    assert_eq!(c.deadtime, Duration::from_millis(100));
    assert_eq!(c.initdead, Duration::from_secs(2));
    assert!(!c.auto_failback);
    assert_eq!(c.peers, ["lb2"]);
    assert_eq!(
        c.links,
        [
            Link::Udp {
                bind: "192.0.2.11:694".parse().unwrap(),
                peer: "192.0.2.12:694".parse().unwrap(),
            },
            Link::Mcast {
                dev: "eth1".into(),
                group: "239.255.0.1:694".parse().unwrap(),
                ttl: 1,
            },
            Link::Serial {
                device: "/dev/ttyS1".into(),
                baud: 115_200,
            },
        ]
    );
    assert_eq!(c.groups.len(), 1);
    let web = &c.groups[0];
    assert_eq!(web.name, "web");
    assert_eq!(web.preferred(), "lb1");
    assert_eq!(web.nodes, ["lb1", "lb2"]);
    assert_eq!(
        web.resources,
        [
            Resource::Command {
                argv: ["fakeip", "hold", "192.0.2.100/24", "dev", "eth0"]
                    .map(String::from)
                    .into(),
                armed: false,
            },
            Resource::Script {
                script: "/etc/hbeat/resource.d/ldir-sync".into(),
                args: vec!["master".into()],
            },
        ]
    );
    // Defaults of what the example leaves out.
    assert_eq!(c.socket, PathBuf::from("/run/hbeat/lb1.sock"));
    assert_eq!(c.state_dir, PathBuf::from("/var/lib/hbeat"));
    assert_eq!(c.socket_group, None);
    assert_eq!(c.notify, None);
    // max(initdead 2s, 10 x deadtime 1s)
    assert_eq!(c.failback_holdoff, Duration::from_secs(2));
    assert_eq!(c.resource_timings, Timings::default());
}

#[test]
fn defaults_fill_in_and_node_defaults_to_the_host_name() {
    let text = BASE
        .replace("node = \"lb1\"\n", "")
        .replace("preferred = \"lb1\"", "preferred = \"lb2\"");
    let c = ok(&text);
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    assert_eq!(c.node, host);
    assert_eq!(c.socket, PathBuf::from(format!("/run/hbeat/{host}.sock")));
    assert_eq!(c.key_file, PathBuf::from(DEFAULT_KEY_FILE));
    assert_eq!(
        (c.keepalive, c.warntime, c.deadtime, c.initdead),
        (
            Duration::from_millis(200),
            Duration::from_millis(600),
            Duration::from_secs(1),
            Duration::from_secs(10)
        )
    );
    assert_eq!(c.failback_holdoff, Duration::from_secs(10));
}

#[test]
fn optional_fields_are_read() {
    let text = format!(
        "{}\nsocket = \"/tmp/x.sock\"\nsocket_group = \"hbeat\"\nnotify = \"logger -t 'hbeat notify'\"\n\
         state_dir = \"/tmp/state\"\nauto_failback = true\nfailback_holdoff = \"30s\"\n\
         resource_settle = \"50ms\"\nresource_timeout = \"3s\"\nresource_kill_after = \"1s\"\n{}",
        "node = \"lb1\"\ncluster = \"lb\"",
        BASE.split_once("cluster = \"lb\"\n").unwrap().1
    );
    let c = ok(&text);
    assert_eq!(c.socket, PathBuf::from("/tmp/x.sock"));
    assert_eq!(c.socket_group.as_deref(), Some("hbeat"));
    assert_eq!(
        c.notify,
        Some(vec!["logger".into(), "-t".into(), "hbeat notify".into()])
    );
    assert_eq!(c.state_dir, PathBuf::from("/tmp/state"));
    assert!(c.auto_failback);
    assert_eq!(c.failback_holdoff, Duration::from_secs(30));
    assert_eq!(c.resource_timings.settle, Duration::from_millis(50));
    assert_eq!(c.resource_timings.script_timeout, Duration::from_secs(3));
    assert_eq!(c.resource_timings.kill_after, Duration::from_secs(1));
}

#[test]
fn every_link_kind_parses() {
    let text = BASE.replace(
        "[[link]]\nudp = { bind = \"192.0.2.11:694\", peer = \"192.0.2.12:694\" }\n",
        "[[link]]\nbcast = { dev = \"eth2\", port = 694 }\n[[link]]\ndisk = { path = \"/dev/sdb1\" }\n\
         [[link]]\nmcast = { dev = \"eth1\", group = \"[ff02::1:2]:694\" }\n\
         [[link]]\nudp = { bind = \"[2001:db8::11]:694\", peer = \"[2001:db8::12]:694\" }\n",
    );
    let c = ok(&text);
    assert_eq!(
        c.links,
        [
            Link::Bcast {
                dev: "eth2".into(),
                port: 694
            },
            Link::Disk {
                path: "/dev/sdb1".into(),
                quorum: false
            },
            Link::Mcast {
                dev: "eth1".into(),
                group: "[ff02::1:2]:694".parse().unwrap(),
                ttl: 1
            },
            Link::Udp {
                bind: "[2001:db8::11]:694".parse().unwrap(),
                peer: "[2001:db8::12]:694".parse().unwrap()
            },
        ]
    );
    assert_eq!(
        c.links.iter().map(Link::kind).collect::<Vec<_>>(),
        ["bcast", "disk", "mcast", "udp"]
    );
}

#[test]
fn a_link_needs_exactly_one_kind() {
    let two = BASE.replace(
        "udp = { bind = \"192.0.2.11:694\", peer = \"192.0.2.12:694\" }",
        "udp = { bind = \"192.0.2.11:694\", peer = \"192.0.2.12:694\" }\ndisk = { path = \"/dev/sdb1\" }",
    );
    assert_error(
        &errors(&two),
        "hbeat.toml:5:1: link[0]: a link has exactly one kind, this one has udp and disk",
    );
    let none = BASE.replace(
        "udp = { bind = \"192.0.2.11:694\", peer = \"192.0.2.12:694\" }\n",
        "",
    );
    assert_error(
        &errors(&none),
        "link[0]: a link needs one of udp, mcast, bcast, serial or disk",
    );
    let missing = BASE.replace(
        "[[link]]\nudp = { bind = \"192.0.2.11:694\", peer = \"192.0.2.12:694\" }\n",
        "",
    );
    assert_error(
        &errors(&missing),
        "hbeat.toml: link: no [[link]]: add at least one",
    );
    let empty = format!("link = []\n{}", missing);
    assert_error(&errors(&empty), "hbeat.toml:1:8: link: no links");
}

#[test]
fn bad_link_values_are_placed() {
    let cases = [
        (
            "udp = { bind = \"192.0.2.11:694\", peer = \"[2001:db8::12]:694\" }",
            "link[0].udp.peer: must be of the same address family as bind",
        ),
        (
            "mcast = { dev = \"eth1\", group = \"192.0.2.1:694\" }",
            "link[0].mcast.group: must be a multicast address",
        ),
        (
            "mcast = { dev = \"eth1\", group = \"239.255.0.1:694\", ttl = 0 }",
            "link[0].mcast.ttl: must be at least 1",
        ),
        (
            "serial = { device = \"/dev/ttyS1\", baud = 115201 }",
            "link[0].serial.baud: 115201 is not a standard speed",
        ),
        (
            "serial = { device = \"ttyS1\", baud = 9600 }",
            "link[0].serial.device: must be an absolute path",
        ),
        (
            "disk = { path = \"sdb1\" }",
            "link[0].disk.path: must be an absolute path",
        ),
        (
            "bcast = { dev = \"eth1\", port = 0 }",
            "link[0].bcast.port: must not be 0",
        ),
        (
            "bcast = { dev = \"eth1:0\", port = 694 }",
            "link[0].bcast.dev:",
        ),
        (
            "udp = { bind = \"192.0.2.11:694\", peer = \"192.0.2.12:694\", ttl = 2 }",
            "link[0].udp.ttl: unknown field `ttl`",
        ),
    ];
    for (link, wanted) in cases {
        let text = BASE.replace(
            "udp = { bind = \"192.0.2.11:694\", peer = \"192.0.2.12:694\" }",
            link,
        );
        assert_error(&errors(&text), wanted);
    }
}

#[test]
fn node_names_must_be_unique() {
    let same_as_me = BASE.replace("name = \"lb2\"", "name = \"lb1\"");
    assert_error(
        &errors(&same_as_me),
        "hbeat.toml:4:8: peer[0].name: node \"lb1\" is this node's own name (node): node names must be unique",
    );
    let twice = BASE.replace(
        "name = \"lb2\"\n",
        "name = \"lb2\"\n[[peer]]\nname = \"lb2\"\n",
    );
    assert_error(
        &errors(&twice),
        "hbeat.toml:6:8: peer[1].name: node \"lb2\" is listed twice",
    );
    let no_peer = BASE.replace("[[peer]]\nname = \"lb2\"\n", "");
    assert_error(&errors(&no_peer), "peer: no [[peer]]");
    let bad = BASE.replace("name = \"lb2\"", "name = \"lb 2\"");
    assert_error(&errors(&bad), "peer[0].name: \"lb 2\" is not a valid name");
}

#[test]
fn groups_name_known_nodes() {
    let t = BASE.replace("preferred = \"lb1\"", "preferred = \"lb3\"");
    assert_error(
        &errors(&t),
        "hbeat.toml:9:13: group[0].preferred: unknown node \"lb3\": the nodes are lb1, lb2",
    );
    let t = BASE.replace("preferred = \"lb1\"", "nodes = [\"lb1\", \"lb9\"]");
    assert_error(&errors(&t), "group[0].nodes[1]: unknown node \"lb9\"");
    let t = BASE.replace("preferred = \"lb1\"", "nodes = [\"lb1\", \"lb1\"]");
    assert_error(
        &errors(&t),
        "group[0].nodes[1]: node \"lb1\" is listed twice",
    );
    let t = BASE.replace(
        "preferred = \"lb1\"",
        "preferred = \"lb1\"\nnodes = [\"lb2\", \"lb1\"]",
    );
    assert_error(
        &errors(&t),
        "group[0].preferred: must be the first of nodes (\"lb2\")",
    );
    let t = BASE.replace("preferred = \"lb1\"\n", "");
    assert_error(&errors(&t), "group[0]: set preferred");
    let t = BASE.replace("preferred = \"lb1\"", "nodes = []");
    assert_error(&errors(&t), "group[0].nodes: must list at least one node");
}

#[test]
fn group_nodes_default_to_preferred_then_every_node_by_name() {
    let three = BASE.replace(
        "name = \"lb2\"\n",
        "name = \"lb3\"\n[[peer]]\nname = \"lb2\"\n",
    ) + "[[group]]\nname = \"mail\"\npreferred = \"lb2\"\nresources = [\"sleep 1000\"]\n\
          [[group]]\nname = \"db\"\nnodes = [\"lb3\", \"lb1\"]\nresources = [\"sleep 1000\"]\n";
    let c = ok(&three);
    assert_eq!(c.nodes(), ["lb1", "lb2", "lb3"]);
    let nodes: Vec<(&str, &[String])> = c
        .groups
        .iter()
        .map(|g| (g.name.as_str(), g.nodes.as_slice()))
        .collect();
    assert_eq!(
        nodes,
        [
            ("web", &["lb1".to_string(), "lb2".into(), "lb3".into()][..]),
            ("mail", &["lb2".to_string(), "lb1".into(), "lb3".into()][..]),
            ("db", &["lb3".to_string(), "lb1".into()][..]),
        ]
    );
    assert_eq!(c.groups[2].preferred(), "lb3");
}

#[test]
fn group_problems_are_reported_together() {
    let t = BASE.replace("resources = [\"sleep 1000\"]", "resources = []")
        + "[[group]]\nname = \"web\"\npreferred = \"lb2\"\nresources = [\"script:\", \"sleep 'x\"]\n";
    let e = errors(&t);
    assert_error(
        &e,
        "hbeat.toml:10:13: group[0].resources: a group needs at least one resource",
    );
    assert_error(
        &e,
        "hbeat.toml:12:8: group[1].name: group \"web\" is defined twice",
    );
    assert_error(
        &e,
        "hbeat.toml:14:14: group[1].resources[0]: a script resource needs a path",
    );
    assert_error(&e, "group[1].resources[1]: cannot split the command line");
    assert_eq!(e.len(), 4, "{e:#?}");
}

#[test]
fn timings_must_be_ordered() {
    let with = |k: &str, w: &str, d: &str, i: &str| {
        format!(
            "keepalive = \"{k}\"\nwarntime = \"{w}\"\ndeadtime = \"{d}\"\ninitdead = \"{i}\"\n{BASE}"
        )
    };
    ok(&with("20ms", "60ms", "100ms", "2s"));
    ok(&with("20ms", "100ms", "100ms", "2s"));
    assert_error(
        &errors(&with("60ms", "60ms", "100ms", "2s")),
        "hbeat.toml:2:12: warntime: warntime (60ms) must be longer than keepalive (60ms)",
    );
    assert_error(
        &errors(&with("20ms", "200ms", "100ms", "2s")),
        "hbeat.toml:3:12: deadtime: deadtime (100ms) must not be shorter than warntime (200ms)",
    );
    assert_error(
        &errors(&with("20ms", "30ms", "30ms", "2s")),
        "deadtime: deadtime (30ms) must be at least twice keepalive (20ms)",
    );
    assert_error(
        &errors(&with("20ms", "60ms", "2s", "2s")),
        "hbeat.toml:4:12: initdead: initdead (2s) must be longer than deadtime (2s)",
    );
    assert_error(
        &errors(&with("0s", "60ms", "100ms", "2s")),
        "keepalive: must be more than 0",
    );
    // Against a default: deadtime 500ms with the default initdead is fine, 20s is not.
    let t = format!("deadtime = \"20s\"\n{BASE}");
    let e = errors(&t);
    assert_error(
        &e,
        "hbeat.toml:1:12: deadtime: initdead (10s) must be longer than deadtime (20s)",
    );
    assert_error(
        &errors(&format!("keepalive = \"2\"\n{BASE}")),
        "hbeat.toml:1:13: keepalive:",
    );
}

#[test]
fn unknown_keys_get_did_you_mean() {
    let t = format!("keepalve = \"20ms\"\n{BASE}");
    assert_error(
        &errors(&t),
        "hbeat.toml:1:1: keepalve: unknown field `keepalve`, did you mean `keepalive`?",
    );
    let t = BASE.replace("preferred =", "prefered =");
    assert_error(
        &errors(&t),
        "group[0].prefered: unknown field `prefered`, did you mean `preferred`?",
    );
    let t = BASE.replace("[[peer]]", "[peer]");
    assert_error(
        &errors(&t),
        "peer: expected an array, found a table; write [[peer]]",
    );
}

#[test]
fn other_field_problems() {
    let cases = [
        (
            "cluster = \"lb\"",
            "cluster = \"\"",
            "cluster: must not be empty",
        ),
        (
            "node = \"lb1\"",
            "node = \"-lb1\"",
            "node: \"-lb1\" is not a valid name",
        ),
        (
            "cluster = \"lb\"",
            "cluster = \"lb\"\nkey_file = \"authkey\"",
            "key_file: must be an absolute path",
        ),
        (
            "cluster = \"lb\"",
            "cluster = \"lb\"\nnotify = \"\"",
            "notify: the command is empty",
        ),
        (
            "cluster = \"lb\"",
            "cluster = \"lb\"\nnotify = \"x 'y\"",
            "notify: cannot split the command line",
        ),
        (
            "cluster = \"lb\"",
            "cluster = \"lb\"\nresource_kill_after = \"0s\"",
            "resource_kill_after: must be more than 0",
        ),
    ];
    for (from, to, wanted) in cases {
        assert_error(&errors(&BASE.replace(from, to)), wanted);
    }
    assert_error(
        &errors(&BASE.replace("cluster = \"lb\"\n", "")),
        "hbeat.toml:1:1: cluster: required field is missing",
    );
}

/// lb2's file for the same pair: the same groups, seen from the other side.
fn peer_view(text: &str) -> String {
    text.replace("node = \"lb1\"", "node = \"lb2\"")
        .replace("name = \"lb2\"", "name = \"lb1\"")
        .replace(
            "\"192.0.2.11:694\", peer = \"192.0.2.12:694\"",
            "\"192.0.2.12:694\", peer = \"192.0.2.11:694\"",
        )
}

#[test]
fn groups_hash_is_stable_and_the_same_on_both_nodes() {
    let lb1 = ok(EXAMPLE);
    let lb2 = ok(&peer_view(EXAMPLE));
    assert_eq!(lb2.node, "lb2");
    assert_eq!(lb1.groups_hash(), lb2.groups_hash());
    // Golden: the value every version must compute for the example (the frames carry it).
    assert_eq!(
        lb1.groups_hash(),
        0x31b0_4898_f675_a204,
        "{:016x}",
        lb1.groups_hash()
    );
    // Timings, links and quoting do not change it.
    let other = EXAMPLE
        .replace("keepalive = \"20ms\"", "keepalive = \"30ms\"")
        .replace(
            "\"fakeip hold 192.0.2.100/24 dev eth0\"",
            "\"fakeip  hold '192.0.2.100/24' dev eth0\"",
        );
    assert_eq!(ok(&other).groups_hash(), lb1.groups_hash());
}

#[test]
fn groups_hash_changes_with_the_groups() {
    let base = ok(EXAMPLE).groups_hash();
    let variants = [
        EXAMPLE.replace("name = \"web\"", "name = \"www\""),
        EXAMPLE.replace("preferred = \"lb1\"", "preferred = \"lb2\""),
        EXAMPLE.replace("::master", "::backup"),
        EXAMPLE.replace("dev eth0", "dev eth1"),
        // Order of resources.
        EXAMPLE.replace(
            "  \"fakeip hold 192.0.2.100/24 dev eth0\",           # a long-running command: supervised\n  \"script:/etc/hbeat/resource.d/ldir-sync::master\", # heartbeat-style script with args: start/stop/status\n",
            "  \"script:/etc/hbeat/resource.d/ldir-sync::master\",\n  \"fakeip hold 192.0.2.100/24 dev eth0\",\n",
        ),
        // A resource's words regrouped ("a b" + "c" vs "a" + "b c") must not collide.
        EXAMPLE.replace("\"fakeip hold 192.0.2.100/24 dev eth0\"", "\"fakeip 'hold 192.0.2.100/24' dev eth0\""),
        EXAMPLE.to_owned() + "[[group]]\nname = \"mail\"\npreferred = \"lb2\"\nresources = [\"sleep 1\"]\n",
    ];
    let mut seen = vec![base];
    for v in &variants {
        let h = ok(v).groups_hash();
        assert!(!seen.contains(&h), "hash did not change for:\n{v}");
        seen.push(h);
    }
}

#[test]
fn load_reads_a_file_and_names_it() {
    let dir = std::env::temp_dir().join(format!("hbeat-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hbeat.toml");
    std::fs::write(
        &path,
        BASE.replace("preferred = \"lb1\"", "preferred = \"lbx\""),
    )
    .unwrap();
    let e = load(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "{}:9:13: group[0].preferred: unknown node",
            path.display()
        )),
        "{e}"
    );
    std::fs::write(&path, BASE).unwrap();
    assert_eq!(load(&path).unwrap().node, "lb1");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn machine_settings_carry_the_config() {
    let c = ok(EXAMPLE);
    let m = c.machine_settings();
    assert_eq!(m.me, "lb1");
    assert_eq!(m.peers, ["lb2"]);
    assert_eq!(
        (m.keepalive, m.warntime, m.deadtime, m.initdead),
        (c.keepalive, c.warntime, c.deadtime, c.initdead)
    );
    assert_eq!(
        (m.auto_failback, m.failback_holdoff),
        (false, Duration::from_secs(2))
    );
    assert_eq!(m.links, [0, 1, 2]);
    assert_eq!(m.groups_hash, c.groups_hash());
    assert_eq!(m.groups.len(), 1);
    assert_eq!(
        (m.groups[0].name.as_str(), m.groups[0].nodes.as_slice()),
        ("web", &["lb1".to_string(), "lb2".into()][..])
    );
}

#[test]
fn too_many_links_are_refused() {
    let many = "[[link]]\ndisk = { path = \"/dev/sdb1\" }\n".repeat(257);
    let t = BASE.replace("[[link]]\n", &format!("{many}[[link]]\n"));
    assert_error(&errors(&t), "link: at most 256 links");
}

/// The policy issue's names, as written there: `[ping] targets`, per group `interfaces`, per
/// peer `fence`, `monitor_interval`; and votes, quorum, restarts.
#[test]
fn policy_fields_are_read_and_default() {
    let text = r#"node = "lb1"
cluster = "lb"
monitor_interval = "1s"
votes = 2
restart_limit = 5
restart_window = "1m"
[ping]
targets = ["192.0.2.1", "2001:db8::1"]
[[peer]]
name = "lb2"
fence = "/usr/sbin/fence_ipmilan -a 192.0.2.52 -o off"
[[peer]]
name = "lb3"
votes = 0
[[link]]
udp = { bind = "192.0.2.11:694", peer = "192.0.2.12:694" }
[[group]]
name = "web"
preferred = "lb1"
interfaces = ["eth0", "eth1"]
resources = ["sleep 1000"]
"#;
    let c = ok(text);
    assert_eq!(c.monitor_interval, Duration::from_secs(1));
    assert_eq!(c.restart_limit, 5);
    assert_eq!(c.restart_window, Duration::from_secs(60));
    assert!(c.quorum);
    assert_eq!(
        c.votes
            .iter()
            .map(|(n, v)| (n.as_str(), *v))
            .collect::<Vec<_>>(),
        [("lb1", 2), ("lb2", 1), ("lb3", 0)]
    );
    assert_eq!(
        c.fence["lb2"],
        ["/usr/sbin/fence_ipmilan", "-a", "192.0.2.52", "-o", "off"]
    );
    assert!(!c.fence.contains_key("lb3"));
    let ping = c.ping.as_ref().unwrap();
    assert_eq!(ping.targets.len(), 2);
    assert_eq!(ping.interval, Duration::from_secs(1));
    assert_eq!(ping.timeout, ping.interval);
    assert_eq!(c.groups[0].interfaces, ["eth0", "eth1"]);
    let s = c.machine_settings();
    assert!(s.policy.ping && s.policy.quorum);
    assert_eq!(s.policy.fence.iter().collect::<Vec<_>>(), ["lb2"]);
    assert_eq!(s.groups[0].interfaces, ["eth0", "eth1"]);

    // Defaults: no ping, quorum on, 3 restarts in 5 minutes, status every 10 s.
    let c = ok(BASE);
    assert!(c.ping.is_none() && c.fence.is_empty() && c.quorum);
    assert_eq!(c.monitor_interval, Duration::from_secs(10));
    assert_eq!(
        (c.restart_limit, c.restart_window),
        (3, Duration::from_secs(300))
    );
    assert!(c.groups[0].interfaces.is_empty());
}

#[test]
fn interfaces_change_the_groups_hash_only_when_set() {
    let plain = ok(BASE);
    let same = ok(&BASE.replace("resources", "interfaces = []\nresources"));
    let with = ok(&BASE.replace("resources", "interfaces = [\"eth0\"]\nresources"));
    assert_eq!(plain.groups_hash(), same.groups_hash());
    assert_ne!(plain.groups_hash(), with.groups_hash());
}

#[test]
fn policy_problems_are_placed() {
    let text = format!(
        "{BASE}[ping]\ntargets = [\"192.0.2.1\", \"192.0.2.1\", \"not-an-ip\"]\ninterval = \"50ms\"\ntimeout = \"0s\"\n"
    );
    let e = errors(&text);
    assert_error(&e, "ping.targets[2]");
    let text = format!(
        "{BASE}[ping]\ntargets = [\"192.0.2.1\", \"192.0.2.1\"]\ninterval = \"50ms\"\ntimeout = \"0s\"\n"
    );
    let e = errors(&text);
    assert_error(&e, "ping.targets[1]: 192.0.2.1 is listed twice");
    assert_error(&e, "ping.interval: must be at least 100ms");
    assert_error(&e, "ping.timeout: must be more than 0");
    let e = errors(&format!("{BASE}[ping]\ntargets = []\ntimeout = \"2s\"\n"));
    assert_error(&e, "ping.targets: list at least one address");
    assert_error(
        &e,
        "ping.timeout: must not be longer than the interval (1s)",
    );
    let e = errors(
        &BASE
            .replace(
                "name = \"lb2\"",
                "name = \"lb2\"\nfence = \"'unclosed\"\nvotes = 0",
            )
            .replace(
                "cluster = \"lb\"",
                "cluster = \"lb\"\nvotes = 0\nmonitor_interval = \"0s\"",
            ),
    );
    assert_error(&e, "peer[0].fence: cannot split the command line");
    assert_error(&e, "votes: the nodes have no votes at all");
    assert_error(&e, "monitor_interval: must be more than 0");
    let e = errors(&BASE.replace("resources", "interfaces = [\"bad name!\"]\nresources"));
    assert_error(&e, "group[0].interfaces[0]");
}

#[test]
fn a_disk_link_may_be_the_quorum_disk_and_only_one() {
    let one = BASE.replace(
        "[[group]]",
        "[[link]]\ndisk = { path = \"/dev/sdb1\", quorum = true }\n[[link]]\ndisk = { path = \"/dev/sdc1\" }\n[[group]]",
    );
    let c = ok(&one);
    assert_eq!(
        c.links[1],
        Link::Disk {
            path: "/dev/sdb1".into(),
            quorum: true
        }
    );
    assert!(c.machine_settings().policy.quorum_disk);
    assert_eq!(c.quorum_disk_link(), Some(1));
    assert!(!ok(BASE).machine_settings().policy.quorum_disk);
    assert_eq!(ok(BASE).quorum_disk_link(), None);
    let two = one.replace("/dev/sdc1\" }", "/dev/sdc1\", quorum = true }");
    let e = errors(&two);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("hbeat.toml:10:39:")
            && e[0].contains("link[2].disk.quorum: only one disk link can be the quorum disk"),
        "{e:?}"
    );
}

/// The pair example of `contrib/examples/pair/`: both nodes' files parse, name each other, use
/// mirrored link addresses, and define the same groups (the nodes compare this hash).
#[test]
fn the_pair_examples_agree() {
    let lb1 = ok(include_str!(
        "../../../contrib/examples/pair/lb1/hbeat.toml"
    ));
    let lb2 = ok(include_str!(
        "../../../contrib/examples/pair/lb2/hbeat.toml"
    ));
    assert_eq!((lb1.node.as_str(), lb2.node.as_str()), ("lb1", "lb2"));
    assert_eq!(lb1.peers, ["lb2"]);
    assert_eq!(lb2.peers, ["lb1"]);
    assert_eq!(lb1.groups_hash(), lb2.groups_hash());
    assert_eq!(lb1.links.len(), lb2.links.len());
    for (a, b) in lb1.links.iter().zip(&lb2.links) {
        match (a, b) {
            (Link::Udp { bind: b1, peer: p1 }, Link::Udp { bind: b2, peer: p2 }) => {
                assert_eq!((b1, p1), (p2, b2), "udp links must mirror each other");
            }
            _ => assert_eq!(a, b),
        }
    }
    for c in [&lb1, &lb2] {
        assert!(c.auto_failback);
        assert_eq!(c.deadtime, Duration::from_millis(100));
        assert_eq!(c.groups.len(), 1);
        assert_eq!(c.groups[0].preferred(), "lb1");
    }
}

#[test]
fn a_file_that_does_not_validate_still_tells_the_clients_where_the_daemon_listens() {
    use std::path::PathBuf;
    let hint = super::socket_hint;
    assert_eq!(
        hint("node = \"lb1\"\nsocket = \"/run/x.sock\"\nkeepalive = \"fast\"\n"),
        Some(PathBuf::from("/run/x.sock"))
    );
    assert_eq!(
        hint("node = \"lb1\"\nkeepalive = 7\n"),
        Some(PathBuf::from("/run/hbeat/lb1.sock"))
    );
    assert_eq!(hint("node = \"../x\"\n"), None, "not a node name");
    assert_eq!(hint("keepalive = 7\n"), None, "no node");
    assert_eq!(hint("node = \"lb1\"\ncluster = [\n"), None, "not TOML");
}
