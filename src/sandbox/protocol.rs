//! Messages from the sandbox's init (PID 1) to antimony, over a pipe.
//!
//! Each message is 16 bytes (`kind`, three words), written with one
//! `write(2)` below PIPE_BUF, so it arrives whole. The sequence is:
//! `Failed` (set-up failed; init then exits), or `Started` then `Exited`.

use super::sys::{self, Errno, R};
use std::os::fd::RawFd;

/// A step of the set-up, named in error messages.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Parent = 1,
    IdMap,
    Propagation,
    BaseRoot,
    PivotBase,
    NewRoot,
    /// Opening a bind source (index: the mount).
    MountSource,
    /// Creating a mount point (index: the mount).
    MountPoint,
    /// Mounting (index: the mount).
    Mount,
    Loopback,
    RootReadOnly,
    PivotRoot,
    NoNewPrivs,
    /// Adding a Landlock rule (index: the rule).
    LandlockRule,
    LandlockRestrict,
    Capabilities,
    Seccomp,
    Fork,
    Setsid,
    Chdir,
    Exec,
}

impl Step {
    fn from_u32(v: u32) -> Option<Step> {
        use Step::*;
        Some(match v {
            1 => Parent,
            2 => IdMap,
            3 => Propagation,
            4 => BaseRoot,
            5 => PivotBase,
            6 => NewRoot,
            7 => MountSource,
            8 => MountPoint,
            9 => Mount,
            10 => Loopback,
            11 => RootReadOnly,
            12 => PivotRoot,
            13 => NoNewPrivs,
            14 => LandlockRule,
            15 => LandlockRestrict,
            16 => Capabilities,
            17 => Seccomp,
            18 => Fork,
            19 => Setsid,
            20 => Chdir,
            21 => Exec,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// A set-up step failed; nothing of the program ran.
    Failed {
        step: Step,
        index: u32,
        errno: Errno,
    },
    /// The program was executed; its PID inside the sandbox.
    Started { pid: i32 },
    /// The program ended with this wait status.
    Exited { status: i32 },
}

const FAILED: u32 = 1;
const STARTED: u32 = 2;
const EXITED: u32 = 3;

impl Message {
    pub fn encode(self) -> [u8; 16] {
        let (kind, a, b, c) = match self {
            Message::Failed { step, index, errno } => (FAILED, step as u32, index, errno as i32),
            Message::Started { pid } => (STARTED, 0, 0, pid),
            Message::Exited { status } => (EXITED, 0, 0, status),
        };
        let mut out = [0u8; 16];
        out[0..4].copy_from_slice(&kind.to_ne_bytes());
        out[4..8].copy_from_slice(&a.to_ne_bytes());
        out[8..12].copy_from_slice(&b.to_ne_bytes());
        out[12..16].copy_from_slice(&c.to_ne_bytes());
        out
    }

    pub fn decode(buf: &[u8; 16]) -> Option<Message> {
        let word = |i: usize| u32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        let c = word(12) as i32;
        match word(0) {
            FAILED => Some(Message::Failed {
                step: Step::from_u32(word(4))?,
                index: word(8),
                errno: Errno::from_raw(c),
            }),
            STARTED => Some(Message::Started { pid: c }),
            EXITED => Some(Message::Exited { status: c }),
            _ => None,
        }
    }

    /// Sends the message (child side: no allocation).
    pub fn send(self, fd: RawFd) -> R<()> {
        sys::write_all(fd, &self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for m in [
            Message::Failed {
                step: Step::Mount,
                index: 7,
                errno: Errno::ENOENT,
            },
            Message::Started { pid: 2 },
            Message::Exited { status: 9 },
        ] {
            assert_eq!(Message::decode(&m.encode()), Some(m));
        }
        assert_eq!(Message::decode(&[0xff; 16]), None);
    }
}
