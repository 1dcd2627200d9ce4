//! Exit codes shared by every binary of the toolkit.
//!
//! The numbers follow daemontools/qmail (111 = temporary failure, try again), the LSB init-script
//! status convention (3 = not running) and systemd practice (125 with
//! `RestartPreventExitStatus=125` = permanent failure, do not restart). Scripts and units depend
//! on them, so the numeric values never change. This module only names the codes; deciding which
//! one a failure deserves is the caller's job.

use std::process::{ExitCode, Termination};

/// How a process ends, as seen by a supervisor or a shell script.
///
/// Return it from `main` (it implements [`Termination`]) or convert it with
/// `ExitCode::from(exit)`.
///
/// ```
/// use common::daemon::Exit;
/// assert_eq!(Exit::TempFail.code(), 111);
/// assert_eq!(Exit::from_code(125), Some(Exit::PermFail));
/// let _code: std::process::ExitCode = Exit::Usage.into();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exit {
    /// 0: success; for a query, the positive answer (held, healthy, running).
    Ok,
    /// 1: a negative answer to a question (status: not held; check: probe failed). Not an error.
    Negative,
    /// 2: usage or configuration error: bad command line, invalid config. Fix input, then retry.
    Usage,
    /// 3: LSB "program is not running" (status commands that follow the LSB convention).
    NotRunning,
    /// 111: temporary failure (resource busy, peer unreachable, kernel refused for now): restart
    /// or retry later.
    TempFail,
    /// 125: permanent failure: restarting will not help (missing kernel module, lost privilege).
    /// Units set `RestartPreventExitStatus=125`.
    PermFail,
}

impl Exit {
    /// Every code, in numeric order.
    pub const ALL: [Exit; 6] = [
        Exit::Ok,
        Exit::Negative,
        Exit::Usage,
        Exit::NotRunning,
        Exit::TempFail,
        Exit::PermFail,
    ];

    /// The numeric process exit status.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Negative => 1,
            Exit::Usage => 2,
            Exit::NotRunning => 3,
            Exit::TempFail => 111,
            Exit::PermFail => 125,
        }
    }

    /// The variant for a numeric status, or `None` for a number this toolkit does not use.
    pub fn from_code(code: u8) -> Option<Exit> {
        Exit::ALL.into_iter().find(|e| e.code() == code)
    }

    /// A short lowercase description, for help texts and logs.
    pub const fn meaning(self) -> &'static str {
        match self {
            Exit::Ok => "ok",
            Exit::Negative => "negative answer",
            Exit::Usage => "usage or configuration error",
            Exit::NotRunning => "not running",
            Exit::TempFail => "temporary failure, retry later",
            Exit::PermFail => "permanent failure, do not restart",
        }
    }

    /// True for the codes a supervisor should answer with a restart or retry.
    pub const fn is_retryable(self) -> bool {
        matches!(self, Exit::TempFail)
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}

impl Termination for Exit {
    fn report(self) -> ExitCode {
        self.into()
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.code(), self.meaning())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_numbers() {
        let got: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(got, [0, 1, 2, 3, 111, 125]);
    }

    #[test]
    fn from_code_round_trips_and_rejects_unknown() {
        for e in Exit::ALL {
            assert_eq!(Exit::from_code(e.code()), Some(e));
        }
        for n in [4u8, 100, 110, 124, 126, 255] {
            assert_eq!(Exit::from_code(n), None, "{n}");
        }
    }

    #[test]
    fn display_names_code_and_meaning() {
        assert_eq!(
            Exit::PermFail.to_string(),
            "125 (permanent failure, do not restart)"
        );
        assert!(Exit::TempFail.is_retryable());
        assert!(!Exit::PermFail.is_retryable());
    }
}
