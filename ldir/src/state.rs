//! The state file (`<state_dir>/state.json`): the services ldir created, so that a later run
//! deletes those that left the configuration while it was not running, and the drains in force,
//! so that a drained real stays drained across a restart. Written atomically (a temporary file
//! renamed over the old one); a missing file is an empty state, a damaged one is an error the
//! daemon logs before starting without it.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use common::ipvs::{Family, Protocol, ServiceKey};
use serde::{Deserialize, Serialize};

use crate::director::Drain;

/// The largest state file read (a 10k-service table takes ~0.5 MiB).
const MAX_BYTES: u64 = 16 << 20;

/// A service key as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
enum StoredKey {
    Addr { protocol: String, addr: SocketAddr },
    Fwmark { fwmark: u32, family: String },
}

impl StoredKey {
    fn of(k: &ServiceKey) -> StoredKey {
        match k {
            ServiceKey::Addr { protocol, addr } => StoredKey::Addr {
                protocol: match protocol {
                    Protocol::Tcp => "tcp".into(),
                    Protocol::Udp => "udp".into(),
                    Protocol::Sctp => "sctp".into(),
                    Protocol::Other(n) => n.to_string(),
                },
                addr: *addr,
            },
            ServiceKey::Fwmark { family, mark } => StoredKey::Fwmark {
                fwmark: *mark,
                family: match family {
                    Family::Inet => "inet".into(),
                    Family::Inet6 => "inet6".into(),
                },
            },
        }
    }

    fn key(&self) -> Option<ServiceKey> {
        Some(match self {
            StoredKey::Addr { protocol, addr } => match protocol.as_str() {
                "tcp" => ServiceKey::tcp(*addr),
                "udp" => ServiceKey::udp(*addr),
                "sctp" => ServiceKey::sctp(*addr),
                n => ServiceKey::Addr {
                    protocol: Protocol::from_number(n.parse().ok()?),
                    addr: *addr,
                },
            },
            StoredKey::Fwmark { fwmark, family } => ServiceKey::fwmark(
                if family == "inet6" {
                    Family::Inet6
                } else {
                    Family::Inet
                },
                *fwmark,
            ),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredDrain {
    ip: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service: Option<StoredKey>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    #[serde(default)]
    owned: Vec<StoredKey>,
    #[serde(default)]
    drains: Vec<StoredDrain>,
}

/// What the state file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Services ldir created.
    pub owned: BTreeSet<ServiceKey>,
    /// Drains in force.
    pub drains: BTreeSet<Drain>,
}

/// Why the state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("{}: {what}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The content is not a state file.
    #[error("{}: not an ldir state file: {reason}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The state file in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

/// Reads the state; a missing file is the empty state.
pub fn read(path: &Path) -> Result<State, StateError> {
    use std::io::Read;
    let io = |what, source| StateError::Io {
        path: path.to_owned(),
        what,
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
        Err(e) => return Err(io("cannot open", e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io("cannot read", e))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(StateError::Damaged {
            path: path.to_owned(),
            reason: format!("larger than {MAX_BYTES} bytes"),
        });
    }
    let stored: Stored = serde_json::from_slice(&bytes).map_err(|e| StateError::Damaged {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(State {
        owned: stored.owned.iter().filter_map(StoredKey::key).collect(),
        drains: stored
            .drains
            .iter()
            .map(|d| Drain {
                ip: d.ip,
                port: d.port,
                service: d.service.as_ref().and_then(StoredKey::key),
            })
            .collect(),
    })
}

/// Writes the state atomically, creating the directory if needed.
pub fn write(path: &Path, state: &State) -> Result<(), StateError> {
    let io = |what, source| StateError::Io {
        path: path.to_owned(),
        what,
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io("cannot create its directory", e))?;
    }
    let stored = Stored {
        owned: state.owned.iter().map(StoredKey::of).collect(),
        drains: state
            .drains
            .iter()
            .map(|d| StoredDrain {
                ip: d.ip,
                port: d.port,
                service: d.service.as_ref().map(StoredKey::of),
            })
            .collect(),
    };
    let mut text = serde_json::to_vec_pretty(&stored).unwrap_or_default();
    text.push(b'\n');
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, &text).map_err(|e| io("cannot write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("cannot replace", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_missing_and_damaged() {
        let dir = std::env::temp_dir().join(format!("ldir-state-{}", std::process::id()));
        let p = path(&dir.join("sub"));
        assert_eq!(read(&p).unwrap(), State::default());
        let state = State {
            owned: [
                ServiceKey::tcp("192.0.2.100:80".parse().unwrap()),
                ServiceKey::udp("[2001:db8::1]:53".parse().unwrap()),
                ServiceKey::sctp("192.0.2.1:9".parse().unwrap()),
                ServiceKey::fwmark(Family::Inet6, 7),
            ]
            .into(),
            drains: [
                Drain {
                    ip: "192.0.2.13".parse().unwrap(),
                    port: None,
                    service: None,
                },
                Drain {
                    ip: "192.0.2.14".parse().unwrap(),
                    port: Some(80),
                    service: Some(ServiceKey::fwmark(Family::Inet, 3)),
                },
            ]
            .into(),
        };
        write(&p, &state).unwrap();
        assert_eq!(read(&p).unwrap(), state);
        std::fs::write(&p, "{\"owned\": 5}").unwrap();
        assert!(
            read(&p)
                .unwrap_err()
                .to_string()
                .contains("not an ldir state file")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
