//! SIGHUP and `hbeat reload`: what a new configuration may change in a running daemon.
//!
//! A reload is all or nothing (DESIGN.md: validate first, keep the old on error). The new file,
//! its key file and its `notify` program are checked first; then the fields a running daemon
//! cannot change without dropping what it holds are compared. If any of them changed, nothing
//! is applied and the message names every such field: the node must be restarted (`hbeat
//! standby`, restart, `hbeat takeover`) — heartbeat's haresources could not change live either.
//!
//! What a reload changes: the key ring (rotation: add the new key everywhere, then make it the
//! first, then drop the old), the timings (`keepalive`, `warntime`, `deadtime`, `initdead`),
//! `auto_failback` and `failback_holdoff`, the `notify` command, a peer's `fence` command (not
//! which peers have one) and `monitor_interval`.

use std::path::Path;

use crate::check;
use crate::config::{self, Config};
use crate::keys::KeyRing;

/// A validated new configuration the daemon may switch to at once.
#[derive(Debug)]
pub struct Reload {
    pub config: Config,
    pub keys: KeyRing,
    /// The live fields that differ from the running configuration (for the log).
    pub changed: Vec<&'static str>,
}

/// Why a reload changed nothing: every problem, one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub Vec<String>);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

/// Reads and checks the file at `path` against the running `old` configuration.
pub fn prepare(path: &Path, old: &Config) -> Result<Reload, Refused> {
    let new = config::load(path)
        .map_err(|errors| Refused(errors.errors().iter().map(ToString::to_string).collect()))?;
    let mut problems = Vec::new();
    let keys = check::key_file(&new.key_file)
        .map_err(|e| problems.push(e.to_string()))
        .ok();
    if let Some(e) = check::notify(&new) {
        problems.push(format!("{}: notify: {e}", path.display()));
    }
    for (peer, e) in check::fences(&new) {
        problems.push(format!("{}: peer {peer:?}: fence: {e}", path.display()));
    }
    let restart = needs_restart(old, &new);
    if !restart.is_empty() {
        problems.push(format!(
            "{}: {} changed: a running node cannot change {}; restart it (hbeat standby first to hand its groups over)",
            path.display(),
            restart.join(", "),
            if restart.len() == 1 { "it" } else { "them" },
        ));
    }
    match keys {
        Some(keys) if problems.is_empty() => Ok(Reload {
            changed: live_changes(old, &new),
            config: new,
            keys,
        }),
        _ => Err(Refused(problems)),
    }
}

/// The fields of `new` that differ from `old` and need a restart, by their names in the file.
pub fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut fields = Vec::new();
    let mut cmp = |name, differs: bool| {
        if differs {
            fields.push(name);
        }
    };
    cmp("node", old.node != new.node);
    cmp("cluster", old.cluster != new.cluster);
    cmp("peer", old.peers != new.peers);
    cmp("link", old.links != new.links);
    cmp("group", old.groups != new.groups);
    cmp("socket", old.socket != new.socket);
    cmp("socket_group", old.socket_group != new.socket_group);
    cmp("state_dir", old.state_dir != new.state_dir);
    cmp(
        "resource timings",
        old.resource_timings != new.resource_timings,
    );
    cmp("quorum", old.quorum != new.quorum);
    cmp("votes", old.votes != new.votes);
    cmp("ping", old.ping != new.ping);
    cmp(
        "the peers with a fence",
        !old.fence.keys().eq(new.fence.keys()),
    );
    cmp("restart_limit", old.restart_limit != new.restart_limit);
    cmp("restart_window", old.restart_window != new.restart_window);
    fields
}

/// The live fields of `new` that differ from `old`, by their names in the file.
pub fn live_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut fields = Vec::new();
    let mut cmp = |name, differs: bool| {
        if differs {
            fields.push(name);
        }
    };
    cmp("key_file", old.key_file != new.key_file);
    cmp("keepalive", old.keepalive != new.keepalive);
    cmp("warntime", old.warntime != new.warntime);
    cmp("deadtime", old.deadtime != new.deadtime);
    cmp("initdead", old.initdead != new.initdead);
    cmp("auto_failback", old.auto_failback != new.auto_failback);
    cmp(
        "failback_holdoff",
        old.failback_holdoff != new.failback_holdoff,
    );
    cmp("notify", old.notify != new.notify);
    cmp("fence", old.fence != new.fence);
    cmp(
        "monitor_interval",
        old.monitor_interval != new.monitor_interval,
    );
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::tests::TempDir;
    use std::os::unix::fs::PermissionsExt;

    const KEY: &str = "1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
    const KEY2: &str = "2 202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f\n";

    struct Dir(TempDir);

    impl Dir {
        fn new() -> Dir {
            Dir(TempDir::new("reload"))
        }
        fn key(&self, text: &str, mode: u32) {
            let p = self.0.path("authkey");
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        /// Writes hbeat.toml with `extra` lines and `link` as its one link, returns its path.
        fn config(&self, extra: &str, link: &str) -> std::path::PathBuf {
            let p = self.0.path("hbeat.toml");
            let text = format!(
                "node = \"lb1\"\ncluster = \"lb\"\nkey_file = \"{}\"\nkeepalive = \"20ms\"\nwarntime = \"60ms\"\ndeadtime = \"100ms\"\ninitdead = \"2s\"\n{extra}\n[[peer]]\nname = \"lb2\"\n\n[[link]]\n{link}\n\n[[group]]\nname = \"web\"\npreferred = \"lb1\"\nresources = [\"true\"]\n",
                self.0.path("authkey").display()
            );
            std::fs::write(&p, text).unwrap();
            p
        }
    }

    const LINK: &str = "udp = { bind = \"192.0.2.11:694\", peer = \"192.0.2.12:694\" }";

    fn running(d: &Dir) -> Config {
        config::load(d.config("", LINK)).unwrap()
    }

    #[test]
    fn timings_keys_and_failback_change_live() {
        let d = Dir::new();
        d.key(KEY, 0o600);
        let old = running(&d);
        d.key(&format!("{KEY2}{KEY}"), 0o600);
        let path = d.config(
            "auto_failback = true\nfailback_holdoff = \"5s\"\nnotify = \"true\"",
            LINK,
        );
        let path = {
            // Slower timings too.
            let text = std::fs::read_to_string(&path)
                .unwrap()
                .replace("deadtime = \"100ms\"", "deadtime = \"300ms\"");
            std::fs::write(&path, text).unwrap();
            path
        };
        let r = prepare(&path, &old).unwrap();
        assert_eq!(
            r.changed,
            ["deadtime", "auto_failback", "failback_holdoff", "notify"]
        );
        assert_eq!(r.keys.sending().id(), 2, "the new first key sends");
        assert_eq!(r.keys.ids().collect::<Vec<_>>(), [2, 1]);
        assert_eq!(r.config.deadtime, std::time::Duration::from_millis(300));
        assert!(r.config.auto_failback);
    }

    #[test]
    fn a_link_or_group_change_is_refused_whole_and_named() {
        let d = Dir::new();
        d.key(KEY, 0o600);
        let old = running(&d);
        let path = d.config(
            "auto_failback = true",
            "udp = { bind = \"192.0.2.11:695\", peer = \"192.0.2.12:695\" }",
        );
        let text = std::fs::read_to_string(&path).unwrap().replace(
            "resources = [\"true\"]",
            "resources = [\"true\", \"false\"]",
        );
        std::fs::write(&path, text).unwrap();
        let e = prepare(&path, &old).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(
            e.0[0].contains("link, group changed") && e.0[0].contains("hbeat.toml"),
            "{e}"
        );
    }

    #[test]
    fn an_invalid_file_or_key_file_reports_every_problem() {
        let d = Dir::new();
        d.key(KEY, 0o600);
        let old = running(&d);
        let path = d.config("", LINK);
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("keepalive = \"20ms\"", "keepalive = \"fast\"");
        std::fs::write(&path, text).unwrap();
        let e = prepare(&path, &old).unwrap_err();
        assert!(e.to_string().contains("keepalive"), "{e}");
        // A valid file whose key file others can read, and a notify program that is missing.
        let path = d.config("notify = \"/nonexistent/hook\"", LINK);
        d.key(KEY, 0o644);
        let e = prepare(&path, &old).unwrap_err();
        assert_eq!(e.0.len(), 2, "{e}");
        assert!(e.0[0].contains("authkey"), "{e}");
        assert!(
            e.0[1].contains("notify") && e.0[1].contains("/nonexistent/hook"),
            "{e}"
        );
    }

    #[test]
    fn an_unchanged_file_changes_nothing() {
        let d = Dir::new();
        d.key(KEY, 0o600);
        let old = running(&d);
        let r = prepare(&d.config("", LINK), &old).unwrap();
        assert!(r.changed.is_empty());
        assert_eq!(r.config, old);
    }
}
