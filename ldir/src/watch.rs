//! inotify on the configuration and maintenance directories.
//!
//! The watch starts before the first load, so every change after it is seen. A thread waits on the
//! descriptor (tokio cannot poll an inotify descriptor without `unsafe`) and wakes the daemon; the
//! names that changed are kept, and a reload takes them with [`Watcher::take_changes`], which first
//! reads whatever events are still queued: an edit made before the SIGHUP is always among them.
//! A reload of a 1,000-file directory then reads one file instead of all. When events were lost
//! (queue overflow, the directory itself moved) or inotify is unavailable, it says so and the
//! reload reads everything.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::{Arc, Mutex};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::sync::mpsc;

/// What an inotify event was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    Config,
    Maintenance,
}

/// The watch on the directories; see the module doc.
pub struct Watcher {
    shared: Option<Arc<Mutex<Inner>>>,
    rx: Option<mpsc::Receiver<Changed>>,
}

struct Inner {
    ino: Inotify,
    config: Option<WatchDescriptor>,
    maintenance: Option<WatchDescriptor>,
    /// Names in the configuration directory changed since the last [`Watcher::take_changes`].
    names: BTreeSet<OsString>,
    /// Events were lost since then: the next reload must read everything.
    lost: bool,
}

/// Changed names kept between reloads, at most (a full read is cheaper than a longer list).
const MAX_NAMES: usize = 4096;

const MASK: AddWatchFlags = AddWatchFlags::IN_CLOSE_WRITE
    .union(AddWatchFlags::IN_MODIFY)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_CREATE)
    .union(AddWatchFlags::IN_ATTRIB)
    .union(AddWatchFlags::IN_DELETE_SELF)
    .union(AddWatchFlags::IN_MOVE_SELF);

impl Watcher {
    /// A watcher that sees nothing: every reload reads everything, nothing wakes the daemon.
    pub fn none() -> Watcher {
        Watcher {
            shared: None,
            rx: None,
        }
    }

    /// Starts watching `config_dir` (before the first load, so no change slips between).
    pub fn start(config_dir: &Path) -> Watcher {
        let ino = match Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %e, "inotify unavailable: files are re-read on SIGHUP only");
                return Watcher::none();
            }
        };
        let config = match ino.add_watch(config_dir, MASK) {
            Ok(wd) => Some(wd),
            Err(e) => {
                tracing::warn!(dir = %config_dir.display(), error = %e, "cannot watch: reload with SIGHUP");
                None
            }
        };
        let poll_fd = match ino.as_fd().try_clone_to_owned() {
            Ok(fd) => fd,
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the inotify watch: files are re-read on SIGHUP only");
                return Watcher::none();
            }
        };
        let shared = Arc::new(Mutex::new(Inner {
            ino,
            config,
            maintenance: None,
            names: BTreeSet::new(),
            lost: config.is_none(),
        }));
        let (tx, rx) = mpsc::channel(16);
        let inner = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("ldir-inotify".into())
            .spawn(move || {
                use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
                loop {
                    let mut fds = [PollFd::new(poll_fd.as_fd(), PollFlags::POLLIN)];
                    match poll(&mut fds, PollTimeout::NONE) {
                        Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "inotify wait failed; files are re-read on SIGHUP only");
                            lock(&inner).lost = true;
                            return;
                        }
                    }
                    let what = match lock(&inner).drain() {
                        Ok(w) => w,
                        Err(e) => {
                            tracing::warn!(error = %e, "inotify read failed; files are re-read on SIGHUP only");
                            return;
                        }
                    };
                    // A full queue already holds a change for the loop to act on.
                    for w in what {
                        if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(w) {
                            return;
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the inotify thread: files are re-read on SIGHUP only");
            return Watcher::none();
        }
        Watcher {
            shared: Some(shared),
            rx: Some(rx),
        }
    }

    /// Watches the maintenance directory too (its changes wake the daemon; names are not kept).
    pub fn watch_maintenance(&self, dir: &Path) {
        let Some(shared) = &self.shared else {
            return;
        };
        let mut inner = lock(shared);
        match inner.ino.add_watch(dir, MASK) {
            Ok(wd) => inner.maintenance = Some(wd),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the maintenance directory: it is read at every drift check")
            }
        }
    }

    /// The configuration directory's names changed since the last call (events still queued
    /// included), or `None` when that is not known and everything must be read.
    pub fn take_changes(&self) -> Option<BTreeSet<OsString>> {
        let shared = self.shared.as_ref()?;
        let mut inner = lock(shared);
        if inner.drain().is_err() {
            inner.lost = true;
        }
        let names = std::mem::take(&mut inner.names);
        let unwatched = inner.config.is_none();
        if std::mem::replace(&mut inner.lost, unwatched) {
            return None;
        }
        Some(names)
    }

    /// The next change, or never when nothing is watched.
    pub async fn next(&mut self) -> Option<Changed> {
        match &mut self.rx {
            Some(rx) => match rx.recv().await {
                Some(c) => Some(c),
                None => {
                    self.rx = None;
                    None
                }
            },
            None => std::future::pending().await,
        }
    }
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    // A panic while holding it left plain data behind: still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    /// Reads every queued event (the descriptor does not block); says what changed.
    fn drain(&mut self) -> Result<Vec<Changed>, nix::errno::Errno> {
        let (mut config, mut maintenance) = (false, false);
        loop {
            let events = match self.ino.read_events() {
                Ok(e) => e,
                Err(nix::errno::Errno::EAGAIN) => {
                    let what = [
                        (config, Changed::Config),
                        (maintenance, Changed::Maintenance),
                    ];
                    return Ok(what.into_iter().filter(|w| w.0).map(|w| w.1).collect());
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    self.lost = true;
                    return Err(e);
                }
            };
            for e in events {
                let dir_itself = e.mask.intersects(
                    AddWatchFlags::IN_DELETE_SELF
                        | AddWatchFlags::IN_MOVE_SELF
                        | AddWatchFlags::IN_IGNORED,
                );
                if e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    self.lost = true;
                    (config, maintenance) = (true, true);
                } else if Some(e.wd) == self.config {
                    match e.name {
                        Some(name) if !dir_itself => {
                            if crate::config::is_config_name(&name.to_string_lossy()) {
                                // Bounded: past MAX_NAMES the next reload reads everything anyway.
                                if self.names.len() < MAX_NAMES {
                                    self.names.insert(name);
                                } else {
                                    self.lost = true;
                                }
                                config = true;
                            }
                        }
                        _ => {
                            // The directory itself moved or went: its watch is gone, and every
                            // later reload reads everything.
                            if dir_itself {
                                self.config = None;
                            }
                            self.lost = true;
                            config = true;
                        }
                    }
                } else if Some(e.wd) == self.maintenance {
                    maintenance = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tempdir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ldir-watch-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn set(names: &[&str]) -> BTreeSet<OsString> {
        names.iter().map(|n| (*n).into()).collect()
    }

    #[tokio::test]
    async fn names_changed_before_the_call_are_always_in_it() {
        let d = tempdir("names");
        let mut w = Watcher::start(&d);
        assert_eq!(w.take_changes(), Some(set(&[])));
        // No wait: the call reads what is still queued.
        std::fs::write(d.join("a.toml"), "x").unwrap();
        assert_eq!(w.take_changes(), Some(set(&["a.toml"])));
        assert_eq!(w.take_changes(), Some(set(&[])), "taken once");
        // Editor leftovers and other files are not config names.
        std::fs::write(d.join(".a.toml.swp"), "x").unwrap();
        std::fs::write(d.join("a.toml~"), "x").unwrap();
        std::fs::write(d.join("README"), "x").unwrap();
        assert_eq!(w.take_changes(), Some(set(&[])));
        // A rename names both sides; a removal names the file.
        std::fs::rename(d.join("a.toml"), d.join("b.toml")).unwrap();
        std::fs::write(d.join("c.toml"), "x").unwrap();
        std::fs::remove_file(d.join("c.toml")).unwrap();
        assert_eq!(w.take_changes(), Some(set(&["a.toml", "b.toml", "c.toml"])));
        // The thread wakes the daemon too.
        std::fs::write(d.join("d.toml"), "x").unwrap();
        let woke = tokio::time::timeout(Duration::from_secs(10), w.next()).await;
        assert_eq!(woke.expect("no wake-up within 10 s"), Some(Changed::Config));
        assert_eq!(w.take_changes(), Some(set(&["d.toml"])));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn too_many_changed_names_mean_read_everything() {
        let d = tempdir("many");
        let w = Watcher::start(&d);
        for i in 0..=MAX_NAMES {
            std::fs::write(d.join(format!("v{i}.toml")), "x").unwrap();
        }
        assert_eq!(w.take_changes(), None);
        assert_eq!(
            w.take_changes(),
            Some(set(&[])),
            "known again after the full read"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_moved_directory_or_no_watch_means_read_everything() {
        let d = tempdir("moved");
        let w = Watcher::start(&d);
        let moved = d.with_extension("moved");
        let _ = std::fs::remove_dir_all(&moved);
        std::fs::rename(&d, &moved).unwrap();
        assert_eq!(w.take_changes(), None);
        assert_eq!(w.take_changes(), None, "the watch is gone for good");
        std::fs::remove_dir_all(&moved).unwrap();
        assert_eq!(Watcher::none().take_changes(), None);
        assert_eq!(
            Watcher::start(&d).take_changes(),
            None,
            "a directory that is not there"
        );
    }
}
