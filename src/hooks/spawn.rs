//! Starting a hook on the host: a `clone(CLONE_VM | CLONE_VFORK)` child
//! that sets itself up with a handful of system calls and executes the
//! hook, as posix_spawn does, with what posix_spawn cannot do.
//!
//! Why not `std::process::Command`: std uses posix_spawn only when no
//! `pre_exec` closure is set, and with one it forks (a copy of antimony's
//! page tables: about 0.3 ms), which dropping to the invoking user
//! (`system = "User"` under sudo or pkexec) needs; and glibc's posix_spawn
//! looks at all 64 signals in the child and resets them (128 system calls,
//! about 25 µs a hook). Here the child resets the standard signals antimony
//! handles (31 look-ups, a few resets), and the pidfd comes from the clone.
//!
//! The child shares antimony's memory and runs on a stack of its own while
//! antimony is suspended (CLONE_VFORK: until the child has executed the
//! hook or exited). It reads only what was built before the clone — every
//! C string, pointer array and descriptor — and writes one word: the errno
//! of the step that failed, which antimony reads once it resumes. Every
//! signal is blocked across the clone, so none of antimony's handlers can
//! run in the child; the child resets those handlers to the default before
//! it unblocks signals for the hook.
//!
//! A hook antimony runs as another user than itself (root dropping to the
//! user it acts for) gets nothing that would let it act as antimony: a
//! session of its own (no controlling terminal of antimony's, so no
//! TIOCSTI into it, no `/dev/tty` leading to it), and instead of antimony's
//! standard input a new pseudo-terminal when that is a terminal (its
//! controlling terminal, relayed by antimony: `pty`), a pipe antimony fills
//! from it otherwise. Its stdout and stderr are pipes to antimony anyway.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::pty::{self, Relay};

/// The child's stack: its steps use a few hundred bytes.
const STACK: usize = 32 * 1024;

/// A command to start: program, argv and environment as C strings.
#[derive(Debug)]
pub struct HostCommand {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// Drop to this user and group (from root, on behalf of a user).
    pub drop_to: Option<(libc::uid_t, libc::gid_t)>,
}

/// A NUL byte in a program's name, an argument or the environment: the
/// kernel could not be given it (std's Command says the same).
fn c_string(bytes: &[u8]) -> std::io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a NUL byte in the command or its environment",
        )
    })
}

impl HostCommand {
    /// `program` is executed as given when it holds a `/` (the plan found
    /// it), else looked up in antimony's PATH as std's Command does; as
    /// given, it is also the hook's argv[0].
    pub fn new<'a>(
        program: &OsStr,
        args: impl IntoIterator<Item = &'a OsStr>,
        env: impl IntoIterator<Item = (&'a OsStr, &'a OsStr)>,
    ) -> std::io::Result<HostCommand> {
        let path = if program.as_bytes().contains(&b'/') {
            c_string(program.as_bytes())?
        } else {
            let found = std::env::var_os("PATH").and_then(|dirs| {
                std::env::split_paths(&dirs)
                    .map(|d| d.join(program))
                    .find(|p| p.is_file())
            });
            match found {
                Some(p) => c_string(p.as_os_str().as_bytes())?,
                None => return Err(std::io::Error::from_raw_os_error(libc::ENOENT)),
            }
        };
        let mut argv = vec![c_string(program.as_bytes())?];
        for a in args {
            argv.push(c_string(a.as_bytes())?);
        }
        let mut envp: Vec<CString> = Vec::new();
        for (k, v) in env {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            envp.push(c_string(&kv)?);
        }
        Ok(HostCommand {
            path,
            argv,
            envp,
            drop_to: None,
        })
    }
}

/// The hook's standard input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// antimony's own (a foreground hook).
    Inherit,
    /// /dev/null (a background hook).
    Null,
    /// A pipe antimony writes its JSON input to.
    Pipe,
}

/// A started hook: the leader of a new process group.
#[derive(Debug)]
pub struct Started {
    pub pid: libc::pid_t,
    pub pidfd: OwnedFd,
    /// Our ends of its pipes.
    pub stdin: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// It leads a session of its own (it runs as another user).
    pub session: bool,
    /// antimony's standard input relayed to it (it runs as another user).
    pub relay: Option<Relay>,
}

/// Everything the child reads, built before the clone; `err` is what it
/// writes.
#[repr(C)]
struct ChildArgs {
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    /// Descriptors for 0, 1 and 2 (-1: keep the inherited one).
    stdio: [RawFd; 3],
    /// Lead a session of its own rather than only a process group.
    session: bool,
    /// Make its stdin (a new terminal) its controlling terminal.
    ctty: bool,
    drop_to: Option<(libc::uid_t, libc::gid_t)>,
    parent: libc::pid_t,
    /// Where the child stores its PID for antimony's guardian (or null).
    register: *const AtomicI32,
    err: libc::c_int,
}

/// A NULL-terminated array of pointers to the strings, as execve wants.
fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

fn dev_null() -> std::io::Result<OwnedFd> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    Ok(OwnedFd::from(null))
}

/// antimony's standard input, for a hook that runs as `uid`, another user:
/// never the descriptor itself. A terminal (antimony in its foreground)
/// becomes a new one, the hook's own, that copies its settings and size
/// and belongs to the hook's user (so that it can open it by name, as
/// ssh's or sudo's prompts do); antimony relays between the two. Not in
/// the foreground, antimony may not read the terminal: the hook reads
/// /dev/null. Anything else comes through a pipe antimony fills while the
/// hook runs (what the hook leaves of what antimony read for it is lost
/// to the program). Returns the hook's descriptor and the relay.
fn relayed_stdin(uid: libc::uid_t) -> std::io::Result<(OwnedFd, Relay, bool)> {
    let mut relay = Relay::new();
    if !pty::is_terminal(0) {
        let (r, w) = pipe()?;
        relay.pump_in(0, w);
        return Ok((r, relay, false));
    }
    // SAFETY: tcgetpgrp and getpgrp take integers.
    let foreground = unsafe { libc::tcgetpgrp(0) == libc::getpgrp() };
    if !foreground {
        return Ok((dev_null()?, relay, false));
    }
    let (master, slave) = pty::open_host()?;
    if let Some(settings) = pty::Settings::of(0) {
        settings.apply(slave.as_raw_fd())?;
    }
    nix::unistd::fchown(&slave, Some(uid.into()), None)?;
    // Its output (echo, what it writes to /dev/tty) where antimony's
    // own messages go.
    let output = [2, 1]
        .into_iter()
        .find(|&fd| pty::is_terminal(fd))
        .unwrap_or(0);
    relay.attach(master, Some(0), output, pty::Mode::Input);
    Ok((slave, relay, true))
}

/// Starts `cmd` leading a process group of its own, its stdout and stderr
/// pipes to antimony. `register`: a slot of the guardian's table, where
/// the child stores its PID (its group's number) before it executes the
/// hook, then checks that antimony is still its parent (see
/// `hooks::guardian`).
pub fn spawn(
    cmd: &HostCommand,
    input: Input,
    register: Option<&AtomicI32>,
) -> std::io::Result<Started> {
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    // Another user than antimony's: a session of its own, and never
    // antimony's stdin itself (see the module's comment).
    let session = cmd.drop_to.is_some();
    let mut relay = None;
    let mut ctty = false;
    let (stdin_ours, stdin_theirs) = match (input, cmd.drop_to) {
        (Input::Inherit, None) => (None, None),
        (Input::Inherit, Some((uid, _))) => {
            let (fd, r, terminal) = relayed_stdin(uid)?;
            relay = Some(r);
            ctty = terminal;
            (None, Some(fd))
        }
        (Input::Null, _) => (None, Some(dev_null()?)),
        (Input::Pipe, _) => {
            let (r, w) = pipe()?;
            (Some(w), Some(r))
        }
    };
    let argv = pointers(&cmd.argv);
    let envp = pointers(&cmd.envp);
    let mut args = ChildArgs {
        path: cmd.path.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        stdio: [
            stdin_theirs.as_ref().map_or(-1, |f| f.as_raw_fd()),
            out_w.as_raw_fd(),
            err_w.as_raw_fd(),
        ],
        session,
        ctty,
        drop_to: cmd.drop_to,
        // SAFETY: getpid cannot fail.
        parent: unsafe { libc::getpid() },
        register: register.map_or(std::ptr::null(), |r| r as *const AtomicI32),
        err: 0,
    };
    let mut stack = vec![0u8; STACK];
    // The top of the stack, 16-byte aligned as every ABI wants.
    let top = (stack.as_mut_ptr() as usize + STACK) & !15;
    let mut pidfd: libc::c_int = -1;
    let blocked = crate::signals::block_all();
    // SAFETY: the child runs `child_main` on `stack` while antimony is
    // suspended (CLONE_VFORK), reads only `args` and what it points to
    // (alive in this frame until clone returns) and writes only
    // `args.err`; it makes system calls only and ends in execve or _exit.
    // CLONE_PIDFD stores the new process's pidfd in `pidfd`.
    let pid = unsafe {
        libc::clone(
            child_main,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD,
            (&raw mut args).cast(),
            &raw mut pidfd,
        )
    };
    let clone_error = std::io::Error::last_os_error();
    drop(blocked);
    drop(stack);
    if pid < 0 {
        return Err(clone_error);
    }
    // SAFETY: the kernel stored a new descriptor there (CLONE_PIDFD).
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    if args.err != 0 {
        // The child exited without executing the hook: reap it.
        let mut status = 0;
        // SAFETY: waiting for our own child, which has exited.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        return Err(std::io::Error::from_raw_os_error(args.err));
    }
    Ok(Started {
        pid,
        pidfd,
        stdin: stdin_ours,
        stdout: out_r,
        stderr: err_r,
        session,
        relay,
    })
}

/// The child, up to execve. System calls only (through libc: the errno
/// they set is antimony's, which is suspended and does not read it).
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's `ChildArgs`, alive and not touched by
    // the parent until this child has executed or exited.
    let a = unsafe { &mut *arg.cast::<ChildArgs>() };
    let fail = |a: &mut ChildArgs| -> ! {
        // SAFETY: reading errno, then exiting without running anything of
        // the parent's (no atexit handlers, no buffers flushed).
        unsafe {
            a.err = (*libc::__errno_location()).max(1);
            libc::_exit(127)
        }
    };
    // SAFETY: each call below is a system call on values prepared before
    // the clone (`a`) or on locals.
    unsafe {
        // Signals with a handler go back to the default before any is
        // unblocked (a handler must never run in here); SIGPIPE too, which
        // Rust ignores for itself (std's children get it back as well).
        // Signals antimony ignores stay ignored, as POSIX says.
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in 1..32 {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            let mut cur: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut cur) < 0 {
                continue;
            }
            let handled = cur.sa_sigaction != libc::SIG_DFL && cur.sa_sigaction != libc::SIG_IGN;
            if handled || sig == libc::SIGPIPE {
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        // A group of its own (its number is its PID) either way; a
        // session of its own, without a controlling terminal, for a hook
        // that runs as another user.
        if a.session {
            if libc::setsid() < 0 {
                fail(a);
            }
        } else if libc::setpgid(0, 0) < 0 {
            fail(a);
        }
        if !a.register.is_null() {
            // Our group's number, for the guardian to kill should antimony
            // die; then, whether antimony still lives: if it died before
            // the store, the guardian may have swept the table already.
            (*a.register).store(libc::getpid(), Ordering::Release);
            if libc::getppid() != a.parent {
                libc::_exit(1);
            }
        }
        for (target, &fd) in a.stdio.iter().enumerate() {
            let target = target as RawFd;
            if fd < 0 {
                continue;
            }
            if fd == target {
                // Already in place: only its close-on-exec flag goes.
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    fail(a);
                }
            } else if libc::dup2(fd, target) < 0 {
                fail(a);
            }
        }
        // Its new terminal becomes its controlling terminal (0: steal
        // nothing; it is nobody's).
        if a.ctty && libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
            fail(a);
        }
        if let Some((uid, gid)) = a.drop_to {
            // The system calls themselves: the C library's wrappers would
            // change the credentials of every thread of the process they
            // think they are in, antimony's (the memory is shared).
            let groups = [gid];
            if libc::syscall(libc::SYS_setgroups, 1, groups.as_ptr()) < 0
                || libc::syscall(libc::SYS_setgid, gid) < 0
                || libc::syscall(libc::SYS_setuid, uid) < 0
            {
                fail(a);
            }
            // Dropped to the user, the hook also dies with antimony by
            // itself (set after the uid change, which would clear it).
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                fail(a);
            }
            if libc::getppid() != a.parent {
                libc::_exit(1);
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::execve(a.path, a.argv, a.envp);
    }
    fail(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn wait(pid: libc::pid_t) -> i32 {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        status
    }

    #[test]
    fn runs_the_command_with_its_environment_in_a_group_of_its_own() {
        let cmd = HostCommand::new(
            OsStr::new("/bin/sh"),
            [
                OsStr::new("-c"),
                OsStr::new("echo \"$0 $1 $A\"; echo err >&2; read -r x; echo \"in=$x $(ps -o pgid= $$ | tr -d ' ')\"; exit 3"),
                OsStr::new("one two"),
            ],
            [(OsStr::new("A"), OsStr::new("b c")), (OsStr::new("PATH"), OsStr::new("/usr/bin:/bin"))],
        )
        .unwrap();
        let s = spawn(&cmd, Input::Pipe, None).unwrap();
        let mut stdin = std::fs::File::from(s.stdin.unwrap());
        std::io::Write::write_all(&mut stdin, b"hello\n").unwrap();
        drop(stdin);
        let mut out = String::new();
        std::fs::File::from(s.stdout)
            .read_to_string(&mut out)
            .unwrap();
        let mut err = String::new();
        std::fs::File::from(s.stderr)
            .read_to_string(&mut err)
            .unwrap();
        let status = wait(s.pid);
        assert_eq!(out, format!("one two  b c\nin=hello {}\n", s.pid), "stdout");
        assert_eq!(err, "err\n");
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 3,
            "{status:#x}"
        );
    }

    #[test]
    fn the_child_registers_itself_before_the_hook_runs() {
        // The slot is in our memory: filled in before spawn returns, that
        // is, before the exec that ends the child's part.
        let slot = AtomicI32::new(-1);
        let cmd = HostCommand::new(OsStr::new("/bin/true"), [], []).unwrap();
        let s = spawn(&cmd, Input::Null, Some(&slot)).unwrap();
        assert_eq!(slot.load(Ordering::Acquire), s.pid);
        assert_eq!(wait(s.pid), 0);
    }

    #[test]
    fn a_program_that_cannot_start_is_an_error() {
        let cmd = HostCommand::new(OsStr::new("/nonexistent/hook"), [], []).unwrap();
        let e = spawn(&cmd, Input::Null, None).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        let bare = HostCommand::new(OsStr::new("no-such-program-of-antimony"), [], []);
        assert_eq!(bare.unwrap_err().raw_os_error(), Some(libc::ENOENT));
        // A bare name is looked up in PATH, as std's Command does.
        let s = spawn(
            &HostCommand::new(OsStr::new("true"), [], []).unwrap(),
            Input::Null,
            None,
        );
        assert_eq!(wait(s.unwrap().pid), 0);
        let nul = HostCommand::new(OsStr::new("/bin/true"), [OsStr::new("a\0b")], []);
        assert_eq!(nul.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    }
}
