//! The signals antimony passes on to the sandboxed program.
//!
//! signal-hook's handlers only set a flag and write a byte to a pipe (both
//! async-signal-safe); the pipeline polls that pipe alongside its children
//! and does the actual work outside any handler.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use libc::c_int;

/// Forwarded to the program: the three the contract names (SIGINT,
/// SIGTERM, SIGHUP) and the ones a terminal program also expects.
pub const FORWARDED: &[c_int] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// Signals that end a run when they arrive before the program started.
pub fn is_stop(sig: c_int) -> bool {
    matches!(
        sig,
        libc::SIGINT | libc::SIGTERM | libc::SIGHUP | libc::SIGQUIT
    )
}

pub struct Signals {
    flags: Vec<(c_int, Arc<AtomicBool>)>,
    wake: UnixStream,
}

impl Signals {
    /// Installs the handlers. From here on these signals no longer kill
    /// antimony; the pipeline decides what they do.
    pub fn install() -> std::io::Result<Signals> {
        let (wake, write) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let mut flags = Vec::new();
        for &sig in FORWARDED {
            let flag = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register(sig, Arc::clone(&flag))?;
            signal_hook::low_level::pipe::register(sig, write.try_clone()?)?;
            flags.push((sig, flag));
        }
        Ok(Signals { flags, wake })
    }

    /// Readable when a signal arrived.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// The signals that arrived since the last call.
    pub fn take(&self) -> Vec<c_int> {
        let mut buf = [0u8; 64];
        while let Ok(n) = (&self.wake).read(&mut buf) {
            if n == 0 {
                break;
            }
        }
        self.flags
            .iter()
            .filter(|(_, f)| f.swap(false, Ordering::SeqCst))
            .map(|(s, _)| *s)
            .collect()
    }
}

/// Waits until `fd` is readable (true) or `limit` has passed (false); a
/// signal meanwhile does not end the wait early.
pub fn wait_readable(fd: std::os::fd::RawFd, limit: std::time::Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as c_int) };
        if n > 0 {
            return true;
        }
        if n == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return false;
        }
    }
}

/// `SIGTERM` and friends by name, for messages.
pub fn name(sig: c_int) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

/// Every signal blocked until dropped, then the mask from before back:
/// around a clone whose child shares antimony's memory (the guardian, a
/// hook's child), so that none of antimony's handlers, which set flags in
/// that memory, can run in the child before it has dealt with them.
pub struct AllBlocked(libc::sigset_t);

pub fn block_all() -> AllBlocked {
    // SAFETY: sigfillset and pthread_sigmask on local sets.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        AllBlocked(old)
    }
}

impl Drop for AllBlocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `block_all`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}
