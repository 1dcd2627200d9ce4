//! The state file: what the rules engine knows of each service, kept across a restart (failing
//! services stay failing, their episode's alerts counted, acknowledgements and disabled services
//! kept). JSON, versioned ([`VERSION`]); times in it are `time(2)` seconds, converted from and to
//! the engine's monotonic times at save and load. The engine's clock should be the time since
//! boot (`CLOCK_BOOTTIME`): a failure that began before this process started is then still placed
//! right (only one from before the boot is moved to the boot).
//!
//! A file that is missing starts fresh; one that is corrupt, too large ([`MAX_SIZE`]) or of
//! another version is reported ([`StateError`]) for the caller to warn about, and it starts fresh
//! too: never a crash. Services in the file that are no longer configured are dropped (and
//! named); configured services not in it start untested. Writes go to a temporary file renamed
//! into place, so a crash mid-write leaves the old file.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::rules::{Engine, OpStatus, ServiceId, ServiceState};

/// The state file's format version.
pub const VERSION: u32 = 1;
/// The largest state file read (a file of this size is not ours).
pub const MAX_SIZE: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateFile {
    pub version: u32,
    /// By `group/service`.
    pub services: BTreeMap<String, Saved>,
}

/// One service, as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saved {
    pub status: Status,
    /// `time(2)` of the first failure of the current episode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<u64>,
    #[serde(default)]
    pub consecutive_failures: u32,
    #[serde(default)]
    pub alerts_sent: u32,
    /// `time(2)` and summary of the last failure alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_alert: Option<(u64, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked: Option<String>,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub last_summary: String,
    #[serde(default)]
    pub last_detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Untested,
    Ok,
    Fail,
}

impl From<OpStatus> for Status {
    fn from(s: OpStatus) -> Status {
        match s {
            OpStatus::Untested => Status::Untested,
            OpStatus::Ok => Status::Ok,
            OpStatus::Fail => Status::Fail,
        }
    }
}

impl From<Status> for OpStatus {
    fn from(s: Status) -> OpStatus {
        match s {
            Status::Untested => OpStatus::Untested,
            Status::Ok => OpStatus::Ok,
            Status::Fail => OpStatus::Fail,
        }
    }
}

/// Why the state file was not used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read the state file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the state file {} is larger than {MAX_SIZE} bytes: not a state file of ours", path.display())]
    TooLarge { path: PathBuf },
    #[error("the state file {} is corrupt ({reason}): starting with fresh state", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("the state file {} is of version {found}, this monitor writes version {VERSION}: starting with fresh state", path.display())]
    Version { path: PathBuf, found: u32 },
    #[error("cannot write the state file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads the state file at `path`; `Ok(None)` when there is none.
pub fn load(path: &Path) -> Result<Option<StateFile>, StateError> {
    let read_err = |source| StateError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    let mut text = Vec::new();
    file.take(MAX_SIZE + 1)
        .read_to_end(&mut text)
        .map_err(read_err)?;
    if text.len() as u64 > MAX_SIZE {
        return Err(StateError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    // The version first, so that a file of another version says so rather than "corrupt".
    #[derive(Deserialize)]
    struct Head {
        version: u32,
    }
    let corrupt = |e: serde_json::Error| StateError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let head: Head = serde_json::from_slice(&text).map_err(corrupt)?;
    if head.version != VERSION {
        return Err(StateError::Version {
            path: path.to_path_buf(),
            found: head.version,
        });
    }
    serde_json::from_slice(&text).map(Some).map_err(corrupt)
}

/// Writes `state` to `path` (a temporary file in the same directory, renamed into place).
pub fn save(path: &Path, state: &StateFile) -> Result<(), StateError> {
    let write_err = |source| StateError::Write {
        path: path.to_path_buf(),
        source,
    };
    let text = serde_json::to_vec_pretty(state)
        .map_err(|e| write_err(std::io::Error::other(e.to_string())))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).map_err(write_err)?;
    std::fs::rename(&tmp, path).map_err(write_err)
}

/// A monotonic time `t` (the engine's) as `time(2)`, given both clocks now.
fn to_wall(t: Duration, now: Duration, wall: Duration) -> u64 {
    wall.saturating_sub(now.saturating_sub(t)).as_secs()
}

/// A `time(2)` as the engine's monotonic time, given both clocks now (a time before the
/// monotonic clock's start, or in the future, is clamped).
///
/// The time is placed in the middle of its second: the file keeps whole seconds, and a time placed
/// at the start of its second was read back a second early whenever the clocks were read a few
/// microseconds apart (the `failing_since` shown after a restart was a second off).
fn to_mono(w: u64, now: Duration, wall: Duration) -> Duration {
    (now.saturating_sub(wall.saturating_sub(Duration::from_secs(w))) + Duration::from_millis(500))
        .min(now)
}

impl Engine {
    /// The state of every service, for the state file (`now`: the engine's clock; `wall`:
    /// `time(2)` now).
    pub fn export(&self, now: Duration, wall: Duration) -> StateFile {
        StateFile {
            version: VERSION,
            services: self
                .states()
                .map(|(id, s)| {
                    (
                        id.to_string(),
                        Saved {
                            status: s.status.into(),
                            failing_since: s.failing_since.map(|t| to_wall(t, now, wall)),
                            consecutive_failures: s.consecutive_failures,
                            alerts_sent: s.alerts_sent,
                            last_alert: s
                                .last_alert
                                .as_ref()
                                .map(|(t, sum)| (to_wall(*t, now, wall), sum.clone())),
                            acked: s.acked.clone(),
                            disabled: s.disabled,
                            last_summary: s.last_summary.clone(),
                            last_detail: s.last_detail.clone(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// Takes over the saved state of the services still configured; returns the names of the
    /// saved services that are not (dropped).
    pub fn restore(&mut self, file: &StateFile, now: Duration, wall: Duration) -> Vec<String> {
        let mut dropped = Vec::new();
        for (name, saved) in &file.services {
            let id = name.split_once('/').map(|(g, s)| ServiceId::new(g, s));
            let Some(state) = id.as_ref().and_then(|id| self.state_mut(id)) else {
                dropped.push(name.clone());
                continue;
            };
            *state = ServiceState {
                status: saved.status.into(),
                failing_since: saved.failing_since.map(|w| to_mono(w, now, wall)),
                consecutive_failures: saved.consecutive_failures,
                alerts_sent: saved.alerts_sent,
                last_alert: saved
                    .last_alert
                    .as_ref()
                    .map(|(w, sum)| (to_mono(*w, now, wall), sum.clone())),
                acked: saved.acked.clone(),
                disabled: saved.disabled,
                last_summary: saved.last_summary.clone(),
                last_detail: saved.last_detail.clone(),
            };
        }
        dropped
    }
}

#[cfg(test)]
mod tests;
