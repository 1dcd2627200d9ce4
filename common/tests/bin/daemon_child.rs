//! The child process of `common/tests/daemon.rs`: a small daemon using `common::daemon` in the role
//! named by its first argument (`log`, `signals`, `shutdown-future`, `notify`), reporting what it
//! sees as `child: ...` lines on stdout for the test to read. A test fixture, built as a binary so
//! that the test process starts a real program (and the test harness counts only real tests).

use std::time::Duration;

use clap::Parser;
use common::daemon::{self, Exit, LogArgs, LogEnv, Notifier, SdNotifier, SignalError, SignalEvent};

const ARGS_ENV: &str = "COMMON_DAEMON_TEST_ARGS";
const MARK: &str = "child: ";

fn main() {
    let role = std::env::args().nth(1).unwrap_or_default();
    let code = match role.as_str() {
        "log" => child_log(),
        "signals" => child_signals(),
        "shutdown-future" => child_shutdown_future(),
        "notify" => child_notify(),
        other => {
            eprintln!("unknown child role {other:?}");
            99
        }
    };
    std::process::exit(code);
}

/// Prints a mark for the parent.
fn say(what: impl std::fmt::Display) {
    println!("{MARK}{what}");
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
}

fn child_init_log() -> Result<(), i32> {
    let args = std::env::var(ARGS_ENV).unwrap_or_default();
    let argv = std::iter::once("child").chain(args.split_whitespace());
    let cli = Cli::try_parse_from(argv).map_err(|e| {
        eprintln!("{e}");
        i32::from(Exit::Usage.code())
    })?;
    daemon::log::init(&cli.log, &LogEnv::from_process()).map_err(|e| {
        eprintln!("child: {e}");
        i32::from(Exit::Usage.code())
    })?;
    Ok(())
}

fn child_log() -> i32 {
    if let Err(code) = child_init_log() {
        return code;
    }
    tracing::debug!(probe = "tcp", "steady state");
    tracing::info!(
        vip = "192.0.2.100",
        reason = "deadtime expired",
        "taking over"
    );
    0
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn child_signals() -> i32 {
    runtime().block_on(async {
        let mut sigs = daemon::signals().expect("install signal handlers");
        match daemon::signals() {
            Err(SignalError::AlreadyInstalled) => say("second install refused"),
            other => {
                say(format!("second install: {other:?}"));
                return 1;
            }
        }
        say("ready");
        while let Some(ev) = sigs.recv().await {
            say(ev.name());
            if ev == SignalEvent::Shutdown {
                drop(sigs);
                // Dropping releases the slot: a new instance may be created.
                return match daemon::signals() {
                    Ok(_) => 0,
                    Err(e) => {
                        say(format!("reinstall failed: {e}"));
                        1
                    }
                };
            }
        }
        say("stream ended");
        1
    })
}

fn child_shutdown_future() -> i32 {
    if let Err(code) = child_init_log() {
        return code;
    }
    runtime().block_on(async {
        let sigs = daemon::signals().expect("install signal handlers");
        say("ready");
        sigs.shutdown().await;
        say("stopped");
        0
    })
}

/// Sends READY, STATUS, RELOADING and STOPPING; after each it says `sent N` and waits for a line on
/// stdin (the parent's go-ahead, once it has seen what it waits for), so that the watchdog's
/// keepalives are observed between the steps without a timed pause. At end of input it goes on.
fn child_notify() -> i32 {
    runtime().block_on(async {
        let notifier = std::sync::Arc::new(SdNotifier::from_env());
        say(format!("watchdog {:?}", notifier.watchdog_period()));
        let watchdog = daemon::spawn_watchdog(notifier.clone());
        let steps: [&dyn Fn() -> Result<(), daemon::NotifyError>; 4] = [
            &|| notifier.ready(),
            &|| notifier.status("serving 2 virtuals\nREADY=1"),
            &|| notifier.reloading(),
            &|| notifier.stopping(),
        ];
        for (i, step) in steps.into_iter().enumerate() {
            if let Err(e) = step() {
                say(format!("error: {e}"));
                return 1;
            }
            say(format!("sent {i}"));
            // Off the runtime's thread: the watchdog task keeps running meanwhile.
            let go = tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).map(|_| ())
            });
            if let Err(e) = tokio::time::timeout(Duration::from_secs(60), go).await {
                say(format!("no go-ahead from the parent: {e}"));
                return 1;
            }
        }
        if let Some(w) = watchdog {
            w.abort();
        }
        say("done");
        0
    })
}
