//! Starting the sandbox and talking to its init, from antimony's side.
//!
//! `spawn` checks that antimony is single-threaded (the child makes only
//! syscalls, but a fork of a multi-threaded process could still inherit a
//! lock held by another thread), blocks every signal so that the child
//! starts with them blocked (its init takes them with sigwaitinfo), and
//! clones into new namespaces. The parent then holds a pidfd of the init and
//! the read end of its message pipe.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};

use super::prepare::Prepared;
use super::protocol::Message;
use super::sys::{self, Errno};
use super::{SandboxError, init};

/// A running sandbox, seen from antimony.
#[derive(Debug)]
pub struct Sandbox {
    pub pid: libc::pid_t,
    pub pidfd: OwnedFd,
    messages: OwnedFd,
    reaped: bool,
}

/// How many threads this process has, from /proc/self/stat.
fn thread_count() -> Option<usize> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at field 3;
    // num_threads is field 20.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(17)?.parse().ok()
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| {
        SandboxError::Syscall {
            what: "pipe2",
            errno,
        }
    })?;
    // Keep the write end above stdio, so "close everything above 2" in the
    // child can spare it.
    if w.as_raw_fd() > 2 {
        return Ok((r, w));
    }
    let high =
        nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3)).map_err(|errno| {
            SandboxError::Syscall {
                what: "fcntl",
                errno,
            }
        })?;
    // SAFETY: fcntl just returned this new descriptor.
    Ok((r, unsafe { OwnedFd::from_raw_fd(high) }))
}

/// Starts the sandbox. Returns once the child exists; it reports over the
/// message pipe when the program has started or what failed.
pub fn spawn(p: &mut Prepared) -> Result<Sandbox, SandboxError> {
    match thread_count() {
        Some(1) => {}
        Some(n) => return Err(SandboxError::Threads(n)),
        None => {
            return Err(SandboxError::Syscall {
                what: "read /proc/self/stat",
                errno: Errno::EIO,
            });
        }
    }
    let (read_end, write_end) = pipe()?;
    let mut old = SigSet::empty();
    sigprocmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    )
    .map_err(|errno| SandboxError::Syscall {
        what: "sigprocmask",
        errno,
    })?;
    let mut pidfd: libc::c_int = -1;
    let flags = p.clone_flags as libc::c_ulong
        | libc::CLONE_PIDFD as libc::c_ulong
        | libc::SIGCHLD as libc::c_ulong;
    let r = sys::clone(flags, Some(&mut pidfd));
    if let Ok(0) = r {
        // The child. Never returns.
        init::run(p, write_end.as_raw_fd());
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    drop(write_end);
    match r {
        Ok(pid) => Ok(Sandbox {
            pid,
            // SAFETY: CLONE_PIDFD stored a new descriptor for the child here.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
            messages: read_end,
            reaped: false,
        }),
        Err(errno) => Err(SandboxError::Clone(errno)),
    }
}

impl Sandbox {
    /// The message pipe, to poll on.
    pub fn messages_fd(&self) -> BorrowedFd<'_> {
        self.messages.as_fd()
    }

    /// Reads the next message; `None` at end of file (init is gone).
    pub fn read_message(&self) -> Result<Option<Message>, SandboxError> {
        let mut buf = [0u8; 16];
        match sys::read_full(self.messages.as_raw_fd(), &mut buf) {
            Ok(16) => Message::decode(&buf)
                .map(Some)
                .ok_or(SandboxError::Protocol),
            Ok(0) => Ok(None),
            Ok(_) => Err(SandboxError::Protocol),
            Err(errno) => Err(SandboxError::Syscall {
                what: "read from the sandbox",
                errno,
            }),
        }
    }

    /// Sends a signal to the sandbox's init, which passes it to the program.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: pidfd_send_signal with a pidfd we own and no siginfo.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0u32,
            )
        };
    }

    /// Kills the whole sandbox (init, and with it everything in its PID
    /// namespace).
    pub fn kill(&self) {
        self.signal(libc::SIGKILL);
    }

    /// Reaps init; returns its wait status.
    pub fn reap(&mut self) -> i32 {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(self.pid, &mut status, 0) };
        self.reaped = true;
        status
    }

    pub fn pidfd_raw(&self) -> RawFd {
        self.pidfd.as_raw_fd()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            self.reap();
        }
    }
}
