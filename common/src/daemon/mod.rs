//! Daemon plumbing shared by `hbeat`, `ldir`, `fakeip` and `monitor`: [exit codes](exit),
//! [logging set-up](log), [signals as events](mod@signals) and [systemd notifications](notify).
//!
//! The tools run in the foreground under a supervisor (systemd, s6, runit, a terminal), so this
//! module deliberately never forks or self-backgrounds, writes no pid files, does not change
//! user, directory or umask, does not log to syslog or files, and never modifies the process
//! environment. Readiness is reported to the supervisor through `sd_notify` instead.
//!
//! Decisions that depend on the environment are pure functions of explicit inputs
//! ([`log::plan`] of [`LogArgs`] and [`LogEnv`], [`notify::watchdog_period`]); the process is only
//! touched by [`log::init`], [`signals()`] and [`SdNotifier`].
//!
//! A daemon's `main.rs` looks roughly like this:
//!
//! ```no_run
//! use std::sync::Arc;
//! use clap::Parser;
//! use common::daemon::{self, Exit, LogArgs, LogEnv, Notifier, SdNotifier, SignalEvent};
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     log: LogArgs,
//! }
//!
//! fn main() -> Exit {
//!     let cli = Cli::parse();
//!     if let Err(e) = daemon::log::init(&cli.log, &LogEnv::from_process()) {
//!         eprintln!("mytool: {e}");
//!         return Exit::Usage;
//!     }
//!     let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
//!         return Exit::TempFail;
//!     };
//!     rt.block_on(async {
//!         let mut sigs = match daemon::signals() {
//!             Ok(s) => s,
//!             Err(e) => {
//!                 tracing::error!(error = %e, "cannot start");
//!                 return Exit::TempFail;
//!             }
//!         };
//!         let notifier = Arc::new(SdNotifier::from_env());
//!         let _watchdog = daemon::spawn_watchdog(notifier.clone());
//!         let _ = notifier.ready();
//!         while let Some(ev) = sigs.recv().await {
//!             match ev {
//!                 SignalEvent::Reload => {
//!                     let _ = notifier.reloading();
//!                     // validate and apply the new config, then:
//!                     let _ = notifier.ready();
//!                 }
//!                 SignalEvent::Dump => tracing::info!("state: ..."),
//!                 SignalEvent::Shutdown => break,
//!             }
//!         }
//!         let _ = notifier.stopping();
//!         Exit::Ok
//!     })
//! }
//! ```

pub mod exit;
pub mod log;
pub mod notify;
pub mod signals;

pub use exit::Exit;
pub use log::{LogArgs, LogEnv, LogError, LogFormat};
pub use notify::{
    Notification, Notifier, NotifyError, RecordingNotifier, SdNotifier, WatchdogTicker,
    spawn_watchdog,
};
pub use signals::{SignalError, SignalEvent, Signals, signals};

/// Many checks hold many sockets: the soft open-file limit goes up to the hard one.
pub fn raise_nofile() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::debug!(from = soft, to = hard, "raised the open-file limit"),
            Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
        }
    }
}

/// The single-threaded tokio runtime the tools run on (their work is I/O and small; cross-thread
/// wake-ups cost more than they save). On failure it says so on standard error as `TOOL: ...`
/// and gives the exit status.
pub fn runtime(tool: &str) -> Result<tokio::runtime::Runtime, Exit> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("{tool}: cannot start the async runtime: {e}");
            Exit::TempFail
        })
}
