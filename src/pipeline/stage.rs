//! Where the sandbox is in its life, as the run knows it: one value instead
//! of flags that could contradict each other. Pure: the run feeds it what
//! init says and what its pidfd shows; unit-tested below.
//!
//! Init's messages and its end come by two ways (the channel, the pidfd),
//! and one poll can bring both: the program's start may be read after
//! init is known to have ended. So `Ended` can still learn that the
//! program had started, and when it ended.

/// The program, once init has said it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Program {
    /// Its PID on the host (`None` if it could not be read).
    pub host_pid: Option<u32>,
    /// Its PID inside the sandbox (what inside hooks get).
    pub inside_pid: Option<u32>,
    /// Its wait status, once init has said it ended.
    pub exited: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stage {
    /// Not spawned (yet, or ever: the launch ended before).
    #[default]
    Absent,
    /// Init is setting the sandbox up; the program has not started.
    SettingUp,
    /// The program runs (it may have ended, init has not).
    Running(Program),
    /// Init has ended, and with it everything in the sandbox.
    Ended {
        program: Option<Program>,
        init_status: i32,
    },
}

impl Stage {
    /// The sandbox was spawned.
    pub fn spawned(&mut self) {
        if *self == Stage::Absent {
            *self = Stage::SettingUp;
        }
    }

    /// Init said the program started.
    pub fn started(&mut self, host_pid: Option<u32>, inside_pid: Option<u32>) {
        let program = Program {
            host_pid,
            inside_pid,
            exited: None,
        };
        match self {
            Stage::Absent | Stage::SettingUp => *self = Stage::Running(program),
            Stage::Ended {
                program: p @ None, ..
            } => *p = Some(program),
            Stage::Running(_) | Stage::Ended { .. } => {}
        }
    }

    /// Init said the program ended.
    pub fn program_exited(&mut self, status: i32) {
        if let Stage::Running(p)
        | Stage::Ended {
            program: Some(p), ..
        } = self
        {
            p.exited = Some(status);
        }
    }

    /// Init's pidfd said it ended (its wait status).
    pub fn init_ended(&mut self, init_status: i32) {
        let program = self.program().copied();
        if !self.init_gone() {
            *self = Stage::Ended {
                program,
                init_status,
            };
        }
    }

    pub fn program(&self) -> Option<&Program> {
        match self {
            Stage::Running(p)
            | Stage::Ended {
                program: Some(p), ..
            } => Some(p),
            _ => None,
        }
    }

    pub fn program_started(&self) -> bool {
        self.program().is_some()
    }

    /// Whether init has ended.
    pub fn init_gone(&self) -> bool {
        matches!(self, Stage::Ended { .. })
    }

    /// Whether commands can be started inside (hooks, `enter`): the program
    /// runs and init is there to start them.
    pub fn running(&self) -> bool {
        matches!(self, Stage::Running(_))
    }

    pub fn host_pid(&self) -> Option<u32> {
        self.program().and_then(|p| p.host_pid)
    }

    pub fn inside_pid(&self) -> Option<u32> {
        self.program().and_then(|p| p.inside_pid)
    }

    pub fn init_status(&self) -> Option<i32> {
        match self {
            Stage::Ended { init_status, .. } => Some(*init_status),
            _ => None,
        }
    }

    /// The program's wait status once it has ended: its own, or its init's
    /// when it died with it (killed after the grace). `None` for a program
    /// that never started.
    pub fn program_status(&self) -> Option<i32> {
        self.program().and_then(|p| p.exited.or(self.init_status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KILLED: i32 = libc::SIGKILL;
    fn exited(code: i32) -> i32 {
        code << 8
    }

    #[test]
    fn a_program_that_runs_and_exits() {
        let mut s = Stage::default();
        assert!(!s.program_started() && !s.init_gone() && !s.running());
        s.spawned();
        assert_eq!(s, Stage::SettingUp);
        s.started(Some(100), Some(2));
        assert!(s.running() && s.program_started());
        assert_eq!((s.host_pid(), s.inside_pid()), (Some(100), Some(2)));
        assert_eq!(s.program_status(), None);
        s.program_exited(exited(3));
        assert!(s.running(), "init is still there");
        assert_eq!(s.program_status(), Some(exited(3)));
        s.init_ended(exited(0));
        assert!(s.init_gone() && !s.running());
        // The program's own status, not init's.
        assert_eq!(s.program_status(), Some(exited(3)));
    }

    #[test]
    fn a_program_killed_with_its_init_has_inits_status() {
        let mut s = Stage::default();
        s.spawned();
        s.started(None, Some(2));
        s.init_ended(KILLED);
        assert_eq!(s.program_status(), Some(KILLED));
        assert_eq!(s.host_pid(), None);
    }

    #[test]
    fn a_set_up_that_failed_has_no_program() {
        let mut s = Stage::default();
        s.spawned();
        s.init_ended(exited(1));
        assert!(!s.program_started());
        assert_eq!(s.program_status(), None);
        assert_eq!(s.init_status(), Some(exited(1)));
        // Messages that come later for nothing are ignored.
        s.program_exited(exited(5));
        assert_eq!(s.program_status(), None);
    }

    /// One poll brought init's end and, on the channel, the program's start
    /// and end: read in that order, the stage is the same.
    #[test]
    fn the_program_start_read_after_inits_end() {
        let mut s = Stage::default();
        s.spawned();
        s.init_ended(exited(0));
        s.started(Some(100), Some(2));
        s.program_exited(exited(4));
        assert!(s.program_started() && s.init_gone() && !s.running());
        assert_eq!(s.program_status(), Some(exited(4)));
        // A second end changes nothing.
        s.init_ended(KILLED);
        assert_eq!(s.init_status(), Some(exited(0)));
    }
}
