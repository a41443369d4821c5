//! The guardian: a small process forked at the start of a run that
//! outlives antimony for one purpose — if antimony dies without saying
//! goodbye (SIGKILL, a crash), it kills every hook's process group antimony
//! told it about, so that nothing a hook started survives.
//!
//! Why it is needed: a hook gets SIGKILL when antimony dies
//! (PR_SET_PDEATHSIG), but that reaches only the hook's own process, not
//! what it started; the sandbox needs no help (its init's death takes the
//! whole PID namespace with it). Every host hook leads a process group of
//! its own, which antimony registers here when it starts the hook and
//! unregisters once the group is empty (so a reused number is never hit).
//!
//! The guardian is a fork of single-threaded antimony, runs in a process
//! group of its own (a terminal's ^C is not for it), holds only the read
//! end of its pipe, and makes syscalls only, into fixed buffers.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// How many process groups it watches at once; more are not watched.
const MAX_GROUPS: usize = 1024;

const ADD: i32 = 1;
const REMOVE: i32 = 2;
/// antimony ends normally: nothing to kill.
const DONE: i32 = 3;

#[derive(Debug)]
pub struct Guardian {
    pipe: OwnedFd,
    pid: libc::pid_t,
}

impl Guardian {
    /// Forks the guardian. `None` if it could not be started (the run goes
    /// on without it; a warning says so).
    pub fn start() -> Option<Guardian> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 fills a two-element array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
            return None;
        }
        let [r, w] = fds;
        // SAFETY: antimony is single-threaded here (the pipeline starts it
        // first thing); the child only makes syscalls on stack buffers.
        match unsafe { libc::fork() } {
            -1 => {
                // SAFETY: closing the descriptors just made.
                unsafe {
                    libc::close(r);
                    libc::close(w);
                }
                None
            }
            0 => watch(r, w),
            pid => {
                // SAFETY: closing our copy of the read end.
                unsafe { libc::close(r) };
                // SAFETY: pipe2 returned this descriptor, owned from here.
                let pipe = unsafe { OwnedFd::from_raw_fd(w) };
                Some(Guardian { pipe, pid })
            }
        }
    }

    fn send(&self, kind: i32, pgid: libc::pid_t) {
        let mut buf = [0u8; 8];
        buf[..4].copy_from_slice(&kind.to_ne_bytes());
        buf[4..].copy_from_slice(&pgid.to_ne_bytes());
        // SAFETY: an 8-byte write (atomic on a pipe) from a stack buffer.
        unsafe { libc::write(self.pipe.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    }

    /// Watch this process group.
    pub fn add(&self, pgid: libc::pid_t) {
        self.send(ADD, pgid);
    }

    /// The group is empty: stop watching it.
    pub fn remove(&self, pgid: libc::pid_t) {
        self.send(REMOVE, pgid);
    }

    /// antimony ends normally; the guardian leaves without killing.
    pub fn done(self) {
        drop(self);
    }
}

/// Any normal end of antimony's run (an error included): the guardian
/// leaves without killing, and antimony reaps it, so no zombie is left for
/// init. Only a death that skips this (SIGKILL, a crash) sets it off.
impl Drop for Guardian {
    fn drop(&mut self) {
        self.send(DONE, 0);
        let mut status = 0;
        // SAFETY: waiting for our own child, which exits on DONE.
        unsafe { libc::waitpid(self.pid, &mut status, 0) };
    }
}

/// The guardian's life: its pipe moved to descriptor 3, everything else
/// closed (stdio pointed at /dev/null, so it holds none of antimony's
/// pipes open), then it waits.
fn watch(r: RawFd, w: RawFd) -> ! {
    const PIPE: RawFd = 3;
    // SAFETY: only syscalls with integer or static-string arguments.
    unsafe {
        libc::close(w);
        if r != PIPE {
            libc::dup2(r, PIPE);
            libc::close(r);
        }
        libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        if null > PIPE {
            libc::close(null);
        }
        libc::setpgid(0, 0);
        libc::prctl(libc::PR_SET_NAME, c"antimony-guard".as_ptr());
        // The signals a terminal or a caller may send are not for it.
        for sig in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGPIPE,
        ] {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
    sweep_when_orphaned(PIPE)
}

/// Reads registrations until antimony is gone; kills what is registered
/// unless antimony said it was done.
fn sweep_when_orphaned(fd: RawFd) -> ! {
    let mut groups = [0 as libc::pid_t; MAX_GROUPS];
    let mut buf = [0u8; 8];
    loop {
        // SAFETY: reading into a stack buffer.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && nix::errno::Errno::last() == nix::errno::Errno::EINTR {
            continue;
        }
        if n != 8 {
            break;
        }
        let kind = i32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let pgid = i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
        match kind {
            ADD if pgid > 1 => {
                if let Some(slot) = groups.iter_mut().find(|g| **g == 0) {
                    *slot = pgid;
                }
            }
            REMOVE => {
                if let Some(slot) = groups.iter_mut().find(|g| **g == pgid) {
                    *slot = 0;
                }
            }
            // SAFETY: _exit never returns.
            DONE => unsafe { libc::_exit(0) },
            _ => {}
        }
    }
    // antimony died.
    for &g in groups.iter().filter(|g| **g > 1) {
        // SAFETY: kill with integers.
        unsafe { libc::kill(-g, libc::SIGKILL) };
    }
    // SAFETY: _exit never returns.
    unsafe { libc::_exit(0) }
}
