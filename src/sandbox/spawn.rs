//! Starting the sandbox and talking to its init, from antimony's side.
//!
//! `spawn` checks that antimony is single-threaded (the child makes only
//! syscalls, but a fork of a multi-threaded process could still inherit a
//! lock held by another thread), blocks every signal so that the child
//! starts with them blocked (its init takes them through a signalfd), and
//! clones into new namespaces. The parent then holds a pidfd of the init and
//! its end of the channel to it (`protocol`).

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, sendmsg, socketpair,
};

use super::prepare::Prepared;
use super::protocol::{self, Message};
use super::sys::{self, Errno};
use super::{SandboxError, init};

/// A running sandbox, seen from antimony.
#[derive(Debug)]
pub struct Sandbox {
    pub pid: libc::pid_t,
    pub pidfd: OwnedFd,
    channel: OwnedFd,
    reaped: bool,
    /// Removed when the sandbox is dropped, after it has been reaped.
    _cgroup: Option<super::limits::Cgroup>,
}

/// How many threads this process has, from /proc/self/stat.
fn thread_count() -> Result<usize, SandboxError> {
    let stat = std::fs::read_to_string("/proc/self/stat").map_err(|e| SandboxError::Syscall {
        what: "read /proc/self/stat",
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    })?;
    crate::procfs::stat_field(&stat, 20)
        .and_then(|n| n.parse().ok())
        .ok_or(SandboxError::Syscall {
            what: "read the thread count in /proc/self/stat",
            errno: Errno::EINVAL,
        })
}

/// The channel: a SOCK_SEQPACKET pair, both ends close-on-exec.
fn channel() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|errno| SandboxError::Syscall {
        what: "socketpair",
        errno,
    })?;
    // Keep the child's end above stdio, so "close everything above 2" in
    // the child can spare it.
    if theirs.as_raw_fd() > 2 {
        return Ok((ours, theirs));
    }
    let high =
        nix::fcntl::fcntl(&theirs, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3)).map_err(|errno| {
            SandboxError::Syscall {
                what: "fcntl",
                errno,
            }
        })?;
    // SAFETY: fcntl just returned this new descriptor.
    Ok((ours, unsafe { OwnedFd::from_raw_fd(high) }))
}

/// Starts the sandbox. Returns once the child exists; it reports over the
/// channel when the program has started or what failed.
pub fn spawn(p: &mut Prepared) -> Result<Sandbox, SandboxError> {
    match thread_count()? {
        1 => {}
        n => return Err(SandboxError::Threads(n)),
    }
    let (ours, theirs) = channel()?;
    // Every signal blocked across the clone: init starts with all of them
    // blocked (it takes them from a signalfd), and none of antimony's
    // handlers can run in it meanwhile.
    let blocked = crate::signals::block_all();
    let mut pidfd: libc::c_int = -1;
    let flags = p.clone_flags as libc::c_ulong
        | libc::CLONE_PIDFD as libc::c_ulong
        | libc::SIGCHLD as libc::c_ulong;
    let r = match &p.cgroup {
        None => sys::clone(flags, Some(&mut pidfd)),
        // Born in its cgroup (clone3), so nothing of it runs unbounded.
        Some(cg) => sys::clone_into_cgroup(p.clone_flags as u64, &mut pidfd, cg.fd()),
    };
    if let Ok(0) = r {
        // The child. Never returns.
        init::run(p, theirs.as_raw_fd());
    }
    drop(blocked);
    drop(theirs);
    match r {
        Ok(pid) => Ok(Sandbox {
            pid,
            // SAFETY: CLONE_PIDFD stored a new descriptor for the child here.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
            channel: ours,
            reaped: false,
            _cgroup: p.cgroup.take(),
        }),
        Err(errno) => Err(SandboxError::Clone(errno)),
    }
}

impl Sandbox {
    /// The channel, to poll on.
    pub fn messages_fd(&self) -> BorrowedFd<'_> {
        self.channel.as_fd()
    }

    /// Reads the next message, with the descriptor that came with it (a
    /// command's terminal: see `protocol`); `None` when init is gone.
    pub fn read_message(&self) -> Result<Option<(Message, Option<OwnedFd>)>, SandboxError> {
        let mut buf = [0u8; 16];
        loop {
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let mut space = nix::cmsg_space!([RawFd; 1]);
            let msg = match nix::sys::socket::recvmsg::<()>(
                self.channel.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(m) => m,
                Err(Errno::EINTR) => continue,
                Err(Errno::ECONNRESET) => return Ok(None),
                Err(errno) => {
                    return Err(SandboxError::Syscall {
                        what: "read from the sandbox",
                        errno,
                    });
                }
            };
            let mut fd = None;
            for c in msg.cmsgs().into_iter().flatten() {
                if let nix::sys::socket::ControlMessageOwned::ScmRights(list) = c {
                    for f in list {
                        // SAFETY: the kernel gave us this descriptor; a
                        // second one, never sent, is closed at once.
                        let f = unsafe { OwnedFd::from_raw_fd(f) };
                        fd.get_or_insert(f);
                    }
                }
            }
            let n = msg.bytes;
            return match n {
                0 => Ok(None),
                16 => Message::decode(&buf)
                    .map(|m| Some((m, fd)))
                    .ok_or(SandboxError::Protocol),
                _ => Err(SandboxError::Protocol),
            };
        }
    }

    /// Asks init to start a command inside the sandbox, with these stdin,
    /// stdout and stderr; with a `terminal`, on a new terminal for those
    /// its mask names, and `stdio` holds the others only. Its PID (or
    /// failure) comes back as a message.
    pub fn exec(
        &self,
        id: u32,
        argv: &[&[u8]],
        env: &[&[u8]],
        cwd: &[u8],
        terminal: Option<&protocol::Terminal>,
        stdio: &[RawFd],
    ) -> Result<(), SandboxError> {
        let request =
            protocol::exec_request(id, argv, env, cwd, terminal).ok_or(SandboxError::Syscall {
                what: "build the request to run a command inside",
                errno: Errno::E2BIG,
            })?;
        let iov = [IoSlice::new(&request)];
        let rights = [ControlMessage::ScmRights(stdio)];
        let cmsg: &[ControlMessage] = if stdio.is_empty() { &[] } else { &rights };
        sendmsg::<()>(
            self.channel.as_raw_fd(),
            &iov,
            cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map(drop)
        .map_err(|errno| SandboxError::Syscall {
            what: "send a command to the sandbox",
            errno,
        })
    }

    /// Sends init a fixed-size request. A failure needs no answer here: a
    /// channel that is gone means init is, which the event loop sees.
    fn request(&self, request: &[u8; 16]) {
        // SAFETY: sending a buffer we borrow on our socket.
        unsafe {
            libc::send(
                self.channel.as_raw_fd(),
                request.as_ptr().cast(),
                request.len(),
                libc::MSG_NOSIGNAL,
            )
        };
    }

    /// Lets a sandbox started with `wait_for_go` execute its program.
    pub fn go(&self) {
        self.request(&protocol::go_request());
    }

    /// Asks init to send a signal to command `id`'s process group (0: to
    /// the program itself).
    pub fn signal_inside(&self, id: u32, sig: libc::c_int) {
        self.request(&protocol::signal_request(id, sig));
    }

    /// The program's PID on the host: init's first child. Called once the
    /// program has started (init keeps it listed, even if it has already
    /// exited, until this is called), then lets init go on.
    pub fn program_host_pid(&self) -> Option<u32> {
        let pid = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.pid))
            .ok()
            .and_then(|c| c.split_whitespace().next()?.parse().ok());
        self.request(&protocol::release_request());
        pid
    }

    /// Sends a signal to the sandbox's init. Init passes every signal but
    /// SIGKILL on to the program.
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
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            self.reap();
        }
    }
}
