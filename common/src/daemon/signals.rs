//! Unix signals as typed events on a tokio channel: TERM/INT → [`SignalEvent::Shutdown`],
//! HUP → [`SignalEvent::Reload`], USR1 → [`SignalEvent::Dump`].
//!
//! [`signals`] registers the handlers with `signal-hook` before it returns (no signal sent
//! afterwards is lost) and starts one plain thread that blocks on the signal-hook iterator and
//! forwards events into a bounded tokio channel. While the channel is full the thread waits and
//! signal-hook folds repeats of the same signal into one, which is what a daemon wants (two HUPs
//! in a row mean one reload).
//!
//! Only one [`Signals`] may exist at a time: a second [`signals`] call while the first value is
//! alive fails with [`SignalError::AlreadyInstalled`], so that two loops never each see every
//! signal (a double reload) and nobody listens on a receiver nobody reads. After the value is
//! dropped a new one may be created. Caveat from signal-hook: dropping it does **not** restore the
//! default actions, so from then on TERM/INT/HUP/USR1 are ignored by the process. Drop it only
//! while shutting down.
//!
//! Deliberately not here: SIGCHLD/process reaping (the `Runner` owns its children through tokio),
//! SIGPIPE (Rust already ignores it), re-raising a signal to die by it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Handle;
use tokio::sync::mpsc;

/// The signals [`signals`] handles.
pub const HANDLED: [i32; 4] = [SIGTERM, SIGINT, SIGHUP, SIGUSR1];

/// Events forwarded into the channel before the forwarding thread waits (and signal-hook starts
/// folding repeats).
const CHANNEL_CAPACITY: usize = 16;

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// What a signal asks the daemon to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignalEvent {
    /// SIGTERM or SIGINT: stop in an orderly way (release what you hold, tell the peer).
    Shutdown,
    /// SIGHUP: reload the configuration (validate first; on error log and keep the old one).
    Reload,
    /// SIGUSR1: dump the current state to the log.
    Dump,
}

impl SignalEvent {
    /// The event for a signal number, `None` for signals this module does not handle.
    pub fn from_signal(signal: i32) -> Option<SignalEvent> {
        match signal {
            SIGTERM | SIGINT => Some(SignalEvent::Shutdown),
            SIGHUP => Some(SignalEvent::Reload),
            SIGUSR1 => Some(SignalEvent::Dump),
            _ => None,
        }
    }

    /// Lowercase name for logs: `shutdown`, `reload`, `dump`.
    pub fn name(self) -> &'static str {
        match self {
            SignalEvent::Shutdown => "shutdown",
            SignalEvent::Reload => "reload",
            SignalEvent::Dump => "dump",
        }
    }
}

/// Why [`signals`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// Another [`Signals`] is alive in this process.
    #[error(
        "signal handlers are already installed in this process; keep using the first Signals value"
    )]
    AlreadyInstalled,
    /// signal-hook could not register the handlers.
    #[error("cannot install signal handlers: {0}")]
    Register(#[source] std::io::Error),
    /// The forwarding thread could not be started.
    #[error("cannot start the signal thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// The receiving end of the signal events; see the [module docs](self).
#[derive(Debug)]
pub struct Signals {
    rx: mpsc::Receiver<SignalEvent>,
    handle: Handle,
}

/// Installs TERM/INT/HUP/USR1 handlers and returns the event stream.
///
/// Needs no tokio runtime to be called, but [`Signals::recv`] must be awaited inside one.
///
/// ```no_run
/// # async fn demo() -> Result<(), common::daemon::SignalError> {
/// use common::daemon::{signals, SignalEvent};
/// let mut sigs = signals()?;
/// while let Some(ev) = sigs.recv().await {
///     match ev {
///         SignalEvent::Reload => { /* validate, then apply */ }
///         SignalEvent::Dump => { /* log the state */ }
///         SignalEvent::Shutdown => break,
///     }
/// }
/// # Ok(()) }
/// ```
pub fn signals() -> Result<Signals, SignalError> {
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return Err(SignalError::AlreadyInstalled);
    }
    let release = |e| {
        INSTALLED.store(false, Ordering::SeqCst);
        e
    };
    let mut iter = signal_hook::iterator::Signals::new(HANDLED)
        .map_err(|e| release(SignalError::Register(e)))?;
    let handle = iter.handle();
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            // Ends when the Signals value closes the handle or drops the receiver.
            for signal in iter.forever() {
                if let Some(ev) = SignalEvent::from_signal(signal)
                    && tx.blocking_send(ev).is_err()
                {
                    break;
                }
            }
        })
        .map_err(|e| {
            handle.close();
            release(SignalError::Thread(e))
        })?;
    Ok(Signals { rx, handle })
}

impl Signals {
    /// The next event, in arrival order. `None` only if the forwarding thread has ended, which
    /// does not happen while this value is alive unless the thread panicked.
    pub async fn recv(&mut self) -> Option<SignalEvent> {
        self.rx.recv().await
    }

    /// Hands every event on to a daemon's own event queue, as `wrap(event)`, from a task on the
    /// current tokio runtime; the task ends when the queue's receiver is gone.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn forward<E: Send + 'static>(
        mut self,
        tx: mpsc::Sender<E>,
        wrap: impl Fn(SignalEvent) -> E + Send + 'static,
    ) {
        tokio::spawn(async move {
            while let Some(ev) = self.recv().await {
                if tx.send(wrap(ev)).await.is_err() {
                    return;
                }
            }
        });
    }

    /// Waits for [`SignalEvent::Shutdown`], for tools that neither reload nor dump: other events
    /// are logged at info and dropped. Also returns if the event stream ends, so that a broken
    /// signal thread stops the daemon rather than making it unkillable by TERM.
    ///
    /// Takes `self` so the future is `'static` and can be handed to a daemon's
    /// `run(config, deps, shutdown)`.
    pub async fn shutdown(mut self) {
        while let Some(ev) = self.recv().await {
            match ev {
                SignalEvent::Shutdown => return,
                other => tracing::info!(event = other.name(), "signal ignored: not supported here"),
            }
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.handle.close();
        INSTALLED.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_numbers_map_to_events() {
        assert_eq!(
            SignalEvent::from_signal(SIGTERM),
            Some(SignalEvent::Shutdown)
        );
        assert_eq!(
            SignalEvent::from_signal(SIGINT),
            Some(SignalEvent::Shutdown)
        );
        assert_eq!(SignalEvent::from_signal(SIGHUP), Some(SignalEvent::Reload));
        assert_eq!(SignalEvent::from_signal(SIGUSR1), Some(SignalEvent::Dump));
        assert_eq!(SignalEvent::from_signal(signal_hook::consts::SIGUSR2), None);
        assert_eq!(SignalEvent::from_signal(signal_hook::consts::SIGCHLD), None);
        let names: Vec<_> = [
            SignalEvent::Shutdown,
            SignalEvent::Reload,
            SignalEvent::Dump,
        ]
        .map(SignalEvent::name)
        .into();
        assert_eq!(names, ["shutdown", "reload", "dump"]);
    }
}
