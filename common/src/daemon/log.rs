//! Logging set-up: `tracing` events to stderr, as human text or one JSON object per line.
//!
//! The decision (format, timestamps, colours, which filter) is a pure function, [`plan`], of the
//! command line ([`LogArgs`]) and the few environment values that matter ([`LogEnv`]); only
//! [`init`] touches process state, by installing the global subscriber. Rules:
//!
//! - **Filter precedence**: `--log-level` wins over `RUST_LOG`, which wins over the default
//!   `info`. An empty `RUST_LOG` counts as unset. Both take `tracing-subscriber` `EnvFilter`
//!   directives (`debug`, `info,ldir::probe=trace`); a bare word given to `--log-level` must be a
//!   level name (`error`, `warn`, `info`, `debug`, `trace`, `off`), because `EnvFilter` would
//!   otherwise read a typo such as `infoo` as a target name and silently log nothing. An invalid
//!   filter is a [`LogError`] naming its source, never a panic.
//! - **Timestamps** are left out when `JOURNAL_STREAM` is set (systemd connected stderr to the
//!   journal, which stamps every line itself). The variable's `dev:inode` is not compared with
//!   stderr; a wrapper that redirects stderr under systemd should unset it.
//! - **Colours** only when stderr is a terminal, not under the journal, and `NO_COLOR` is unset.
//!
//! Deliberately not here: syslog, log files, rotation, runtime level changes. Logs go to stderr
//! and the supervisor (journald, s6-log, a shell redirect) stores them.

use std::fmt;
use std::io::IsTerminal;

use clap::{Args, ValueEnum};
use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Filter used when neither `--log-level` nor `RUST_LOG` says anything.
pub const DEFAULT_FILTER: &str = "info";

/// Level names accepted as a bare `--log-level` word.
pub const LEVEL_NAMES: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

/// Shape of each log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable text, one event per line.
    #[default]
    Text,
    /// One JSON object per line: `timestamp` (unless under the journal), `level`, `fields`
    /// (with `message`), `target`.
    Json,
}

/// Logging options every binary flattens into its command line:
/// `#[command(flatten)] log: LogArgs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct LogArgs {
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Log filter: a level (error, warn, info, debug, trace, off) or EnvFilter directives such as
    /// `info,ldir::probe=debug`. Overrides RUST_LOG; default info.
    #[arg(long, value_name = "LEVEL", global = true)]
    pub log_level: Option<String>,
}

/// The environment values logging depends on, gathered in one place so that [`plan`] stays pure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogEnv {
    /// `RUST_LOG`, if set.
    pub rust_log: Option<String>,
    /// `JOURNAL_STREAM`, if set (systemd sets it when stderr goes to the journal).
    pub journal_stream: Option<String>,
    /// `NO_COLOR` is set to a non-empty value (<https://no-color.org>).
    pub no_color: bool,
    /// stderr is a terminal.
    pub stderr_is_terminal: bool,
}

impl LogEnv {
    /// Reads the values from this process. Non-UTF-8 values count as unset.
    pub fn from_process() -> LogEnv {
        LogEnv {
            rust_log: std::env::var("RUST_LOG").ok(),
            journal_stream: std::env::var("JOURNAL_STREAM").ok(),
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            stderr_is_terminal: std::io::stderr().is_terminal(),
        }
    }
}

/// Where the effective filter came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterSource {
    /// `--log-level`.
    Flag,
    /// `RUST_LOG`.
    Env,
    /// [`DEFAULT_FILTER`].
    Default,
}

impl fmt::Display for FilterSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FilterSource::Flag => "--log-level",
            FilterSource::Env => "RUST_LOG",
            FilterSource::Default => "default log filter",
        })
    }
}

/// What [`init`] will install; the result of [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPlan {
    /// Line format.
    pub format: LogFormat,
    /// Whether each line carries a timestamp.
    pub timestamps: bool,
    /// Whether text lines use ANSI colours (never for JSON).
    pub ansi: bool,
    /// The validated filter directives.
    pub filter: String,
    /// Where `filter` came from.
    pub filter_source: FilterSource,
}

impl LogPlan {
    /// A fresh `EnvFilter` for [`LogPlan::filter`] (already validated by [`plan`]).
    pub fn env_filter(&self) -> Result<EnvFilter, LogError> {
        parse_filter(&self.filter, self.filter_source)
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The filter text is not valid.
    #[error("{source_name} {value:?}: {reason}")]
    InvalidFilter {
        /// Where the text came from.
        source_name: FilterSource,
        /// The text as given.
        value: String,
        /// What is wrong with it and what is expected.
        reason: String,
    },
    /// A global subscriber was installed already (`init` called twice, or by someone else).
    #[error("cannot install the logger: {0}")]
    AlreadyInstalled(String),
}

/// Decides format, timestamps, colours and filter, validating the filter. Pure.
pub fn plan(args: &LogArgs, env: &LogEnv) -> Result<LogPlan, LogError> {
    let (filter, filter_source) = if let Some(flag) = &args.log_level {
        check_flag(flag)?;
        (flag.trim().to_owned(), FilterSource::Flag)
    } else if let Some(var) = env.rust_log.as_deref().filter(|v| !v.trim().is_empty()) {
        (var.trim().to_owned(), FilterSource::Env)
    } else {
        (DEFAULT_FILTER.to_owned(), FilterSource::Default)
    };
    parse_filter(&filter, filter_source)?;
    let journal = env.journal_stream.is_some();
    Ok(LogPlan {
        format: args.log_format,
        timestamps: !journal,
        ansi: args.log_format == LogFormat::Text
            && env.stderr_is_terminal
            && !journal
            && !env.no_color,
        filter,
        filter_source,
    })
}

fn check_flag(value: &str) -> Result<(), LogError> {
    let v = value.trim();
    let bad = |reason: &str| LogError::InvalidFilter {
        source_name: FilterSource::Flag,
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    if v.is_empty() {
        return Err(bad(
            "empty; expected a level (error, warn, info, debug, trace, off) or directives such as `info,ldir=debug`",
        ));
    }
    let is_directives = v.contains([',', '=', '[']);
    if !is_directives && !LEVEL_NAMES.iter().any(|l| l.eq_ignore_ascii_case(v)) {
        return Err(bad(
            "unknown level; expected one of error, warn, info, debug, trace, off, or directives such as `info,ldir=debug`",
        ));
    }
    Ok(())
}

fn parse_filter(value: &str, source: FilterSource) -> Result<EnvFilter, LogError> {
    EnvFilter::builder()
        .parse(value)
        .map_err(|e| LogError::InvalidFilter {
            source_name: source,
            value: value.to_owned(),
            reason: format!("{e}; expected directives such as `info` or `info,ldir=debug`"),
        })
}

/// Builds the subscriber for `plan`, writing to `writer` (stderr in [`init`]; a buffer in tests).
pub fn subscriber<W>(plan: &LogPlan, writer: W) -> Result<impl Subscriber + Send + Sync, LogError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = plan.env_filter()?;
    let base = tracing_subscriber::fmt::layer().with_writer(writer);
    let layer = match (plan.format, plan.timestamps) {
        (LogFormat::Text, true) => base.with_ansi(plan.ansi).boxed(),
        (LogFormat::Text, false) => base.with_ansi(plan.ansi).without_time().boxed(),
        (LogFormat::Json, true) => base.json().boxed(),
        (LogFormat::Json, false) => base.json().without_time().boxed(),
    };
    Ok(tracing_subscriber::registry().with(filter).with(layer))
}

/// Plans and installs the global subscriber, logging to stderr. Call once, early in `main`,
/// with `LogEnv::from_process()`; on error print it and exit with
/// [`Exit::Usage`](crate::daemon::Exit::Usage).
pub fn init(args: &LogArgs, env: &LogEnv) -> Result<LogPlan, LogError> {
    let plan = plan(args, env)?;
    subscriber(&plan, std::io::stderr)?
        .try_init()
        .map_err(|e| LogError::AlreadyInstalled(e.to_string()))?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(format: LogFormat, level: Option<&str>) -> LogArgs {
        LogArgs {
            log_format: format,
            log_level: level.map(str::to_owned),
        }
    }

    fn env(rust_log: Option<&str>, journal: bool, tty: bool) -> LogEnv {
        LogEnv {
            rust_log: rust_log.map(str::to_owned),
            journal_stream: journal.then(|| "8:12345".to_owned()),
            no_color: false,
            stderr_is_terminal: tty,
        }
    }

    #[test]
    fn filter_precedence_flag_then_rust_log_then_default() {
        let cases = [
            (Some("debug"), Some("error"), "debug", FilterSource::Flag),
            (
                None,
                Some("warn,ldir=trace"),
                "warn,ldir=trace",
                FilterSource::Env,
            ),
            (None, Some("  "), "info", FilterSource::Default),
            (None, None, "info", FilterSource::Default),
            (Some(" TRACE "), None, "TRACE", FilterSource::Flag),
            (
                Some("info,common::daemon=debug"),
                None,
                "info,common::daemon=debug",
                FilterSource::Flag,
            ),
        ];
        for (flag, rust_log, want, source) in cases {
            let p = plan(&args(LogFormat::Text, flag), &env(rust_log, false, false)).unwrap();
            assert_eq!(
                (p.filter.as_str(), p.filter_source),
                (want, source),
                "{flag:?} {rust_log:?}"
            );
        }
    }

    #[test]
    fn timestamps_and_colours() {
        let text = args(LogFormat::Text, None);
        let json = args(LogFormat::Json, None);
        let p = plan(&text, &env(None, false, true)).unwrap();
        assert!(p.timestamps && p.ansi);
        let p = plan(&text, &env(None, true, true)).unwrap();
        assert!(!p.timestamps && !p.ansi);
        let p = plan(&text, &env(None, false, false)).unwrap();
        assert!(p.timestamps && !p.ansi);
        let p = plan(&json, &env(None, false, true)).unwrap();
        assert!(p.timestamps && !p.ansi && p.format == LogFormat::Json);
        let p = plan(&json, &env(None, true, false)).unwrap();
        assert!(!p.timestamps);
        let mut no_color = env(None, false, true);
        no_color.no_color = true;
        assert!(!plan(&text, &no_color).unwrap().ansi);
    }

    #[test]
    fn invalid_filters_are_errors_naming_their_source() {
        for bad in ["infoo", "", "  ", "info,ldir=loud", "[{"] {
            let err = plan(&args(LogFormat::Text, Some(bad)), &env(None, false, false))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("--log-level "), "{bad:?}: {err}");
            assert!(err.contains("expected"), "{bad:?}: {err}");
        }
        let err = plan(
            &args(LogFormat::Text, None),
            &env(Some("info,ldir=loud"), false, false),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("RUST_LOG \"info,ldir=loud\": "), "{err}");
    }

    #[test]
    fn a_valid_flag_hides_an_invalid_rust_log() {
        let p = plan(
            &args(LogFormat::Text, Some("warn")),
            &env(Some("info,x=nonsense"), false, false),
        )
        .unwrap();
        assert_eq!(p.filter, "warn");
    }

    #[test]
    fn clap_flattens_log_args() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            log: LogArgs,
        }
        let cli =
            Cli::try_parse_from(["t", "--log-format", "json", "--log-level", "debug"]).unwrap();
        assert_eq!(cli.log, args(LogFormat::Json, Some("debug")));
        let cli = Cli::try_parse_from(["t"]).unwrap();
        assert_eq!(cli.log, LogArgs::default());
        assert!(Cli::try_parse_from(["t", "--log-format", "xml"]).is_err());
    }

    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    #[test]
    fn json_subscriber_writes_one_object_per_line_and_filters() {
        let buf = Buf::default();
        let p = plan(
            &args(LogFormat::Json, Some("info")),
            &env(None, true, false),
        )
        .unwrap();
        let sub = subscriber(&p, buf.clone()).unwrap();
        tracing::subscriber::with_default(sub, || {
            tracing::debug!("hidden");
            tracing::info!(vip = "192.0.2.100", "taking over");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["fields"]["message"], "taking over");
        assert_eq!(v["fields"]["vip"], "192.0.2.100");
        assert!(v.get("timestamp").is_none(), "{out}");
    }
}
