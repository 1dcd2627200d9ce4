//! `hbeat check`: everything that can be known before the daemon runs, reported at once.
//!
//! The configuration (every problem, `file:line:col: field: message`), every resource's executable
//! (found, a regular file, executable: a typo surfaces here, not at failover time), the `notify`
//! and `fence` commands the same way, the key file (mode and contents, [`crate::keys`]), and that `socket_group`
//! exists. Exit 2 on any problem (DESIGN.md:
//! `check` validates, all errors, exit 2). It runs nothing and opens no socket.

use std::io::Write;
use std::path::Path;

use common::daemon::Exit;

use crate::config::{self, Config};
use crate::keys::{KeyError, KeyRing};
use crate::resource::{ProgramError, Resource};

/// A resource whose program cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("group {group:?}: resource {index} (`{resource}`): {error}")]
pub struct ResourceProblem {
    pub group: String,
    pub index: usize,
    pub resource: String,
    pub error: ProgramError,
}

/// Every resource of every group whose executable is missing or not executable, looked up with
/// the process's `PATH` as the daemon will.
pub fn resources(config: &Config) -> Vec<ResourceProblem> {
    let mut problems = Vec::new();
    for g in &config.groups {
        for (index, r) in g.resources.iter().enumerate() {
            if let Err(error) = r.resolve(None) {
                problems.push(ResourceProblem {
                    group: g.name.clone(),
                    index,
                    resource: r.to_string(),
                    error,
                });
            }
        }
    }
    problems
}

/// The `notify` command's executable, if one is set and it cannot be run.
pub fn notify(config: &Config) -> Option<ProgramError> {
    let argv = config.notify.clone()?;
    Resource::Command { argv, armed: false }.resolve(None).err()
}

/// Every peer's `fence` command whose executable cannot be run (found at failover time would be
/// too late: the takeover waits for the fence).
pub fn fences(config: &Config) -> Vec<(String, ProgramError)> {
    config
        .fence
        .iter()
        .filter_map(|(peer, argv)| {
            Resource::Command {
                argv: argv.clone(),
                armed: false,
            }
            .resolve(None)
            .err()
            .map(|e| (peer.clone(), e))
        })
        .collect()
}

/// The key file: mode 0600 or 0400, and keys that parse ([`KeyRing::load`]).
pub fn key_file(path: &Path) -> Result<KeyRing, KeyError> {
    KeyRing::load(path)
}

/// Runs `hbeat check` on the file at `path`; messages go to `err`, the summary to `out`.
pub fn run(path: &Path, out: &mut dyn Write, err: &mut dyn Write) -> Exit {
    let config = match config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors.errors() {
                let _ = writeln!(err, "hbeat: {e}");
            }
            let _ = writeln!(err, "hbeat: {} error(s) in the configuration", errors.len());
            return Exit::Usage;
        }
    };
    let mut problems: Vec<String> = resources(&config).iter().map(ToString::to_string).collect();
    if let Some(e) = notify(&config) {
        problems.push(format!("notify: {e}"));
    }
    for (peer, e) in fences(&config) {
        problems.push(format!("peer {peer:?}: fence: {e}"));
    }
    if let Err(e) = key_file(&config.key_file) {
        problems.push(format!("key_file: {e}"));
    }
    if let Some(group) = &config.socket_group {
        match nix::unistd::Group::from_name(group) {
            Ok(Some(_)) => {}
            Ok(None) => problems.push(format!("socket_group: no group named {group:?}")),
            Err(e) => problems.push(format!("socket_group: cannot look up {group:?}: {e}")),
        }
    }
    if !problems.is_empty() {
        for p in &problems {
            let _ = writeln!(err, "hbeat: {}: {p}", path.display());
        }
        let _ = writeln!(err, "hbeat: {} problem(s)", problems.len());
        return Exit::Usage;
    }
    let resources: usize = config.groups.iter().map(|g| g.resources.len()).sum();
    let _ = writeln!(
        out,
        "{}: ok, node {}, {} peer(s), {} link(s), {} group(s), {resources} resource(s), groups hash {:016x}",
        path.display(),
        config.node,
        config.peers.len(),
        config.links.len(),
        config.groups.len(),
        config.groups_hash()
    );
    Exit::Ok
}
