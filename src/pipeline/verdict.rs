//! The run's verdict: from what happened ([`Facts`], gathered by the run),
//! the program's outcome that post-hooks see, antimony's exit status, the
//! one error it prints, and the run record's fields — all derived from the
//! same value, so that they cannot disagree. Pure: no process, no file, no
//! clock; unit-tested below.
//!
//! Precedence of the exit status: a launch error (125, and a hook failure
//! after it is only a warning), then a failure after the launch (a stopping
//! or post-hook that may not fail: 125), then the program's own status
//! (its code, or 128+N for signal N), then a signal that cancelled the
//! launch before the program ran (128+N), and last a program that never
//! ran for no known reason (125, still with one error line).

use crate::error::{EXIT_LAUNCHER_FAILURE, Error};
use crate::hooks::{Failure, HookError};
use crate::profile::Outcome as ProgramOutcome;

/// What happened during a run, as far as its verdict is concerned.
#[derive(Debug, Default)]
pub struct Facts {
    /// Why the program could not be launched (a pre-hook, the sandbox's
    /// set-up, a started hook that stopped it…).
    pub launch_error: Option<Error>,
    /// A hook that failed after the launch (stopping, post).
    pub late_error: Option<HookError>,
    /// The program's wait status, if it started and has ended.
    pub program_status: Option<i32>,
    /// The signal that cancelled the launch, if one did.
    pub interrupted: Option<i32>,
    /// The sandbox's init's own wait status, if it ended.
    pub init_status: Option<i32>,
}

/// How the run ends.
#[derive(Debug)]
pub struct Verdict {
    /// antimony's exit status.
    pub code: u8,
    /// The one error `main` prints.
    pub error: Option<Error>,
    /// A failure overshadowed by the error, printed as a warning.
    pub warning: Option<String>,
}

/// The run record's description of the program's end.
#[derive(Debug, PartialEq, Eq)]
pub struct RecordFields {
    /// `exited`, `signaled`, `interrupted` or `launch-failed`.
    pub outcome: &'static str,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error: Option<String>,
}

/// A wait status as an exit status: the code, or 128+N for signal N.
pub fn exit_code(status: i32) -> u8 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status) as u8
    } else if libc::WIFSIGNALED(status) {
        128u8.wrapping_add(libc::WTERMSIG(status) as u8)
    } else {
        EXIT_LAUNCHER_FAILURE
    }
}

/// The program's outcome, as post-hooks' `on` conditions and their JSON
/// input see it (the run's [`Facts`] so far, by reference: the post-hooks
/// run before the verdict is drawn).
pub fn program_outcome(
    launch_error: Option<&Error>,
    program_status: Option<i32>,
    interrupted: Option<i32>,
) -> ProgramOutcome {
    match (launch_error, program_status) {
        (_, Some(status)) if libc::WIFSIGNALED(status) => {
            ProgramOutcome::Signaled(libc::WTERMSIG(status))
        }
        (_, Some(status)) => ProgramOutcome::Exited(libc::WEXITSTATUS(status)),
        (Some(e), None) => ProgramOutcome::LaunchFailed(e.to_string()),
        (None, None) => ProgramOutcome::LaunchFailed(match interrupted {
            Some(sig) => format!("cancelled by {}", crate::signals::name(sig)),
            None => "the program did not start".into(),
        }),
    }
}

impl Facts {
    /// The exit status, the error and the warning, by the precedence in
    /// the module's documentation.
    pub fn verdict(self) -> Verdict {
        let failure = |error| Verdict {
            code: EXIT_LAUNCHER_FAILURE,
            error: Some(error),
            warning: None,
        };
        if let Some(e) = self.launch_error {
            let mut v = failure(e);
            v.warning = self.late_error.map(|late| late.to_string());
            return v;
        }
        if let Some(late) = self.late_error {
            return failure(Error::Hook(late));
        }
        match (self.program_status, self.interrupted) {
            (Some(s), _) => Verdict {
                code: exit_code(s),
                error: None,
                warning: None,
            },
            (None, Some(sig)) => Verdict {
                code: 128u8.wrapping_add(sig as u8),
                error: None,
                warning: None,
            },
            // The program never started and nothing said why (init died
            // without a word): still one error line, never a bare 125.
            (None, None) => {
                let why = "the sandbox's init ended before the program started";
                failure(Error::Other(
                    match self.init_status.and_then(Failure::of_status) {
                        Some(f) => format!("{why}: it {f}"),
                        None => why.into(),
                    },
                ))
            }
        }
    }
}

/// The run record's fields for the outcome post-hooks saw (`None`: the run
/// ended before there was one).
pub fn record_fields(outcome: Option<&ProgramOutcome>, interrupted: bool) -> RecordFields {
    let (outcome, exit_code, signal, error) = match outcome {
        Some(ProgramOutcome::Exited(c)) => ("exited", Some(*c), None, None),
        Some(ProgramOutcome::Signaled(s)) => ("signaled", None, Some(*s), None),
        Some(ProgramOutcome::LaunchFailed(m)) if interrupted => {
            ("interrupted", None, None, Some(m.clone()))
        }
        Some(ProgramOutcome::LaunchFailed(m)) => ("launch-failed", None, None, Some(m.clone())),
        None => ("launch-failed", None, None, None),
    };
    RecordFields {
        outcome,
        exit_code,
        signal,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wait statuses as the kernel encodes them.
    fn exited(code: i32) -> i32 {
        code << 8
    }
    fn killed(sig: i32) -> i32 {
        sig
    }

    fn hook_error(label: &str) -> HookError {
        HookError {
            label: label.into(),
            failure: Failure::Exit(1),
            message: None,
        }
    }

    #[test]
    fn the_programs_status_is_antimonys() {
        for (status, code) in [(exited(0), 0), (exited(3), 3), (killed(9), 137)] {
            let v = Facts {
                program_status: Some(status),
                ..Facts::default()
            }
            .verdict();
            assert_eq!(v.code, code);
            assert!(v.error.is_none() && v.warning.is_none());
        }
    }

    #[test]
    fn a_launch_error_wins_and_a_late_failure_becomes_a_warning() {
        let v = Facts {
            launch_error: Some(Error::Other("pre-hook failed".into())),
            late_error: Some(hook_error("post-hook `x`")),
            program_status: Some(exited(0)),
            ..Facts::default()
        }
        .verdict();
        assert_eq!(v.code, EXIT_LAUNCHER_FAILURE);
        assert_eq!(
            v.error.map(|e| e.to_string()).as_deref(),
            Some("pre-hook failed")
        );
        assert!(v.warning.is_some_and(|w| w.contains("post-hook `x`")));
    }

    #[test]
    fn a_late_failure_overrides_the_programs_status() {
        let v = Facts {
            late_error: Some(hook_error("post-hook `x`")),
            program_status: Some(exited(0)),
            ..Facts::default()
        }
        .verdict();
        assert_eq!(v.code, EXIT_LAUNCHER_FAILURE);
        assert!(matches!(v.error, Some(Error::Hook(_))));
    }

    #[test]
    fn a_cancelled_launch_exits_with_the_signal() {
        let facts = Facts {
            interrupted: Some(libc::SIGINT),
            ..Facts::default()
        };
        assert_eq!(
            program_outcome(None, None, facts.interrupted),
            ProgramOutcome::LaunchFailed("cancelled by SIGINT".into())
        );
        let v = facts.verdict();
        assert_eq!(v.code, 130);
        assert!(v.error.is_none());
    }

    #[test]
    fn a_program_that_never_ran_for_no_reason_still_gets_an_error_line() {
        let v = Facts {
            init_status: Some(killed(libc::SIGKILL)),
            ..Facts::default()
        }
        .verdict();
        assert_eq!(v.code, EXIT_LAUNCHER_FAILURE);
        let text = v.error.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.starts_with("the sandbox's init ended before the program started: it "));
        let v = Facts::default().verdict();
        assert_eq!(
            v.error.map(|e| e.to_string()).as_deref(),
            Some("the sandbox's init ended before the program started")
        );
    }

    #[test]
    fn the_outcome_post_hooks_see() {
        let f = |launch: Option<&str>, status| {
            let e = launch.map(|m| Error::Other(m.into()));
            program_outcome(e.as_ref(), status, None)
        };
        assert_eq!(f(None, Some(exited(2))), ProgramOutcome::Exited(2));
        assert_eq!(f(Some("x"), Some(killed(15))), ProgramOutcome::Signaled(15));
        assert_eq!(
            f(Some("no bind"), None),
            ProgramOutcome::LaunchFailed("no bind".into())
        );
        assert_eq!(
            f(None, None),
            ProgramOutcome::LaunchFailed("the program did not start".into())
        );
    }

    #[test]
    fn record_fields_follow_the_outcome() {
        assert_eq!(
            record_fields(Some(&ProgramOutcome::Exited(4)), false),
            RecordFields {
                outcome: "exited",
                exit_code: Some(4),
                signal: None,
                error: None
            }
        );
        assert_eq!(
            record_fields(Some(&ProgramOutcome::Signaled(9)), false).signal,
            Some(9)
        );
        let m = ProgramOutcome::LaunchFailed("cancelled by SIGTERM".into());
        assert_eq!(record_fields(Some(&m), true).outcome, "interrupted");
        assert_eq!(record_fields(Some(&m), false).outcome, "launch-failed");
        assert_eq!(record_fields(None, false).outcome, "launch-failed");
    }
}
