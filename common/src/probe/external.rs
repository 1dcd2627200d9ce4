//! `external`: runs a command; exit status 0 means up, and the first line of its standard output is
//! the reason. So existing check scripts keep working: ldirectord's `checktype = external`
//! (`checkcommand` called with `vip vport rip rport`, classic-tools.md §1.4) and mon's monitors
//! (`monitor args... host`, exit 0 = ok, first stdout line = summary, §3.3).
//!
//! The command line is split like a shell would ([`split_words`](super::text::split_words)) but no
//! shell runs unless the command says `sh -c`. The command runs in its own process group with
//! standard input closed and standard error discarded; when the check's timeout expires the whole
//! group is killed with SIGKILL (ldirectord sends SIGTERM to the child only, which leaves a
//! hung grandchild behind), and the child is reaped by tokio. Not here: the environment variables
//! mon exports (`MON_*`), keepalived's `misc_dynamic` weights.

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Deserializer, Serialize};
use tokio::io::AsyncReadExt;

use super::Down;
use super::text::split_words;
use crate::config;

/// How long output is still read after the command exited (a background grandchild may hold the
/// pipe open; its output is not waited for).
const OUTPUT_GRACE: Duration = Duration::from_millis(100);

/// How much standard output is kept: enough for a first line.
const OUTPUT_LIMIT: usize = 8192;

/// An external command check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct External {
    /// The command line, e.g. `"/usr/lib/mon/mon.d/tcp.monitor -p 80"` or `"sh -c 'exit 1'"`.
    #[serde(deserialize_with = "de_command")]
    pub command: String,
    /// The arguments appended: `mon` (the target address) or `ldirectord` (`vip vport rip rport`);
    /// by default `ldirectord` when `virtual` is set, else `mon`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<ArgStyle>,
    /// The virtual service, for ldirectord-style arguments.
    #[serde(rename = "virtual", default, skip_serializing_if = "Option::is_none")]
    pub virtual_addr: Option<config::SocketAddr>,
}

fn de_command<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    match split_words(&s) {
        Ok(w) if !w.is_empty() => Ok(s),
        Ok(_) => Err(serde::de::Error::custom("the command is empty")),
        Err(e) => Err(serde::de::Error::custom(format!(
            "cannot split the command line: {e}"
        ))),
    }
}

/// Which arguments are appended to the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArgStyle {
    /// mon: the host is appended.
    Mon,
    /// ldirectord: `vip vport rip rport`.
    Ldirectord,
    /// Nothing is appended.
    None,
}

impl External {
    /// The argument style in effect.
    pub fn style(&self) -> ArgStyle {
        self.args.unwrap_or(if self.virtual_addr.is_some() {
            ArgStyle::Ldirectord
        } else {
            ArgStyle::Mon
        })
    }

    /// The full argv for a check of `target` (port `port`).
    pub fn argv(&self, target: IpAddr, port: Option<u16>) -> Result<Vec<String>, Down> {
        let mut argv = split_words(&self.command).map_err(|e| Down(format!("bad command: {e}")))?;
        match self.style() {
            ArgStyle::Mon => argv.push(target.to_string()),
            ArgStyle::Ldirectord => {
                let v = self
                    .virtual_addr
                    .ok_or_else(|| Down("ldirectord-style arguments need `virtual`".into()))?;
                argv.extend([
                    v.ip().to_string(),
                    v.port().to_string(),
                    target.to_string(),
                    port.unwrap_or(0).to_string(),
                ]);
            }
            ArgStyle::None => {}
        }
        Ok(argv)
    }

    pub(super) fn problems(&self, out: &mut Vec<(&'static str, String)>) {
        if self.style() == ArgStyle::Ldirectord && self.virtual_addr.is_none() {
            out.push((
                "virtual",
                "ldirectord-style arguments need the virtual service address".to_string(),
            ));
        }
        if split_words(&self.command)
            .map(|w| w.is_empty())
            .unwrap_or(true)
        {
            out.push(("command", "must be a command line".to_string()));
        }
    }
}

/// Kills the child's process group when dropped before the child was reaped.
struct GroupKiller(Option<Pid>);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // The child is not reaped yet, so its pid (= the group id) cannot have been reused.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

pub(super) async fn check(
    e: &External,
    target: IpAddr,
    addr: Option<SocketAddr>,
) -> Result<String, Down> {
    let argv = e.argv(target, addr.map(|a| a.port()))?;
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|err| super::io_reason(&format!("cannot run {}", argv[0]), &err))?;
    let mut killer = GroupKiller(
        child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw),
    );
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| Down("no stdout pipe".into()))?;

    let mut out = Vec::new();
    let status = {
        let read = async {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let room = OUTPUT_LIMIT.saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
            }
        };
        tokio::pin!(read);
        tokio::select! {
            status = child.wait() => {
                let _ = tokio::time::timeout(OUTPUT_GRACE, &mut read).await;
                status
            }
            () = &mut read => child.wait().await,
        }
    };
    killer.0 = None;
    let status = status.map_err(|err| super::io_reason("wait", &err))?;
    let first = super::one_line(&String::from_utf8_lossy(&out));
    match status.code() {
        Some(0) => Ok(if first.is_empty() {
            "exit 0".to_string()
        } else {
            first
        }),
        Some(code) if first.is_empty() => Err(Down(format!("exit {code}"))),
        Some(code) => Err(Down(format!("exit {code}: {first}"))),
        None => {
            use std::os::unix::process::ExitStatusExt;
            Err(Down(format!(
                "killed by signal {}",
                status.signal().unwrap_or(0)
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(toml: &str) -> External {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn argv_styles() {
        let ip: IpAddr = "192.0.2.13".parse().unwrap();
        let mon = ext("command = \"/usr/lib/mon/mon.d/tcp.monitor -p 80\"");
        assert_eq!(
            mon.argv(ip, Some(80)).unwrap(),
            ["/usr/lib/mon/mon.d/tcp.monitor", "-p", "80", "192.0.2.13"]
        );
        let ld = ext("command = \"/etc/ha.d/check\"\nvirtual = \"192.0.2.100:80\"");
        assert_eq!(
            ld.argv(ip, Some(8080)).unwrap(),
            ["/etc/ha.d/check", "192.0.2.100", "80", "192.0.2.13", "8080"]
        );
        let none = ext("command = \"true\"\nargs = \"none\"");
        assert_eq!(none.argv(ip, None).unwrap(), ["true"]);
        let bad = ext("command = \"x\"\nargs = \"ldirectord\"");
        let mut p = Vec::new();
        bad.problems(&mut p);
        assert_eq!(p[0].0, "virtual");
    }

    #[test]
    fn empty_command_is_rejected() {
        assert!(
            toml::from_str::<External>("command = \"  \"")
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        assert!(
            toml::from_str::<External>("command = \"'x\"")
                .unwrap_err()
                .to_string()
                .contains("quote")
        );
    }
}
