//! What can go wrong finding, reaching or talking to an instance.

use std::os::fd::RawFd;

use super::client::ConnectError;
use super::registry::{Forged, Stale};
use super::wire::WireError;

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("no running instance or profile `{0}` (see `antimony ps`)")]
    NotFound(String),
    #[error("`{name}` names {count} running instances ({ids}); name one by its id")]
    Ambiguous {
        name: String,
        count: usize,
        ids: String,
    },
    /// Its record names something that is not its antimony: left alone.
    #[error("instance {id}: {why}; refused")]
    Untrusted { id: String, why: Forged },
    /// Its antimony is gone: the record was removed.
    #[error("instance {id}: stale record ({why}), removed; refused")]
    StaleRecord { id: String, why: Stale },
    /// Its control socket is not served by its antimony.
    #[error("instance {id}: {why}; refused")]
    Unreachable { id: String, why: ConnectError },
    #[error("{context}: {}", crate::error::io_text(.source))]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// `enter`: the command cannot be put in a request.
    #[error("enter: the command is too long or holds a NUL byte")]
    Unsendable(#[source] WireError),
    /// `enter` from a terminal, but what came with `Spawned` is not a
    /// terminal's master.
    #[error("enter: instance {id} gave the command no terminal")]
    NoTerminal { id: String },
    #[error("enter: cannot start {command} inside instance {id}: {}", spawn_failure(*.errno))]
    SpawnFailed {
        id: String,
        command: String,
        errno: nix::errno::Errno,
    },
    /// The connection closed after `Spawned`, before the command's end.
    #[error("instance {id} ended while the command ran")]
    EndedDuringCommand { id: String },
    /// The connection closed unanswered.
    #[error("instance {id} refused the command or ended")]
    CommandRefused { id: String },
    #[error("instance {id} did not stop: its antimony refused the request")]
    StopRefused { id: String },
    #[error("instance {id} closed its control socket but its antimony still runs")]
    StillRuns { id: String },
    #[error("--status-fd {0}: not an open file descriptor")]
    StatusFd(RawFd),
    /// The process to join the sandbox through is not (or no longer) one
    /// of the instance's.
    #[error(
        "instance {id}: its program (PID {pid}) is not a process of its sandbox any more; refused"
    )]
    NotInSandbox { id: String, pid: u32 },
    /// A file that a sandbox could only be given at its start.
    #[error(
        "{file}: not forwarded into the running instance {id}: {why} (start another instance with --new-instance, or stop this one first)"
    )]
    NotForwardable {
        id: String,
        file: String,
        why: &'static str,
    },
    /// A file could not be forwarded into a running instance.
    #[error("forward {file} into instance {id}: cannot {step}: {errno}")]
    Forward {
        id: String,
        file: String,
        step: crate::sandbox::forward::ForwardStep,
        errno: nix::errno::Errno,
    },
}

impl InstanceError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> InstanceError {
        InstanceError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Why init could not start an entered command.
fn spawn_failure(errno: nix::errno::Errno) -> String {
    if errno == nix::errno::Errno::ESRCH {
        "its program is not running (not yet, or no longer)".to_string()
    } else {
        errno.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts() {
        let e = InstanceError::SpawnFailed {
            id: "ab".into(),
            command: "/bin/sh".into(),
            errno: nix::errno::Errno::ESRCH,
        };
        assert_eq!(
            e.to_string(),
            "enter: cannot start /bin/sh inside instance ab: its program is not running (not yet, or no longer)"
        );
        let e = InstanceError::SpawnFailed {
            id: "ab".into(),
            command: "nope".into(),
            errno: nix::errno::Errno::ENOENT,
        };
        assert_eq!(
            e.to_string(),
            "enter: cannot start nope inside instance ab: ENOENT: No such file or directory"
        );
        let e = InstanceError::StaleRecord {
            id: "ab".into(),
            why: Stale::Gone(7),
        };
        assert_eq!(
            e.to_string(),
            "instance ab: stale record (its antimony (PID 7) is gone), removed; refused"
        );
        let e = InstanceError::Untrusted {
            id: "ab".into(),
            why: Forged::NotAntimony(7),
        };
        assert_eq!(
            e.to_string(),
            "instance ab: PID 7 is not running antimony; refused"
        );
        let e = InstanceError::Unreachable {
            id: "ab".into(),
            why: ConnectError::Impostor {
                pid: 9,
                uid: 1000,
                expected: 7,
            },
        };
        assert_eq!(
            e.to_string(),
            "instance ab: its control socket is served by PID 9 (uid 1000), not by its antimony (PID 7); refused"
        );
        assert_eq!(
            InstanceError::StatusFd(-1).to_string(),
            "--status-fd -1: not an open file descriptor"
        );
        let e = InstanceError::io(
            "send the command to the instance",
            std::io::Error::from_raw_os_error(libc::EPIPE),
        );
        assert_eq!(
            e.to_string(),
            "send the command to the instance: EPIPE: Broken pipe"
        );
    }
}
