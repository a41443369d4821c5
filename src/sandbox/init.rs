//! The sandbox's first process, after the fork: it builds the sandbox,
//! confines itself, starts the program, and then serves as PID 1 (reaping
//! zombies, forwarding signals, reporting the program's exit).
//!
//! Everything here runs in a child forked from a single-threaded antimony
//! and makes syscalls only: no allocation, no locks, no panics (a failed
//! step is reported to antimony as a typed message and the child exits).

use std::os::fd::RawFd;

use super::prepare::Prepared;
use super::protocol::{Message, Step};
use super::sys::{self, Errno};
use super::{caps, landlock, mounts, namespaces, seccomp};

/// Exit code of init when set-up failed (antimony reads the message, not this).
const SETUP_FAILED: i32 = 125;

fn fail(msg: RawFd, step: Step, index: u32, errno: Errno) -> ! {
    let _ = Message::Failed { step, index, errno }.send(msg);
    sys::exit(SETUP_FAILED)
}

/// Entry point of the cloned child. `msg` is the write end of the pipe to
/// antimony.
pub fn run(p: &mut Prepared, msg: RawFd) -> ! {
    // Die with antimony, even if it is killed with SIGKILL: when PID 1 of
    // a PID namespace dies, the kernel kills everything else in it.
    if let Err(e) = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) {
        fail(msg, Step::Parent, 0, e);
    }
    // antimony may have died before the line above took effect.
    let mut pfd = libc::pollfd {
        fd: p.parent_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    if unsafe { libc::poll(&mut pfd, 1, 0) } != 0 {
        sys::exit(SETUP_FAILED);
    }
    sys::close(p.parent_fd());
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0o022) };

    if let Err(e) = namespaces::write_id_maps(&p.uid_map, &p.gid_map) {
        fail(msg, Step::IdMap, 0, e);
    }

    // The file system.
    if let Err((step, e)) = mounts::enter_base() {
        fail(msg, step, 0, e);
    }
    for (i, cmd) in p.mounts.iter_mut().enumerate() {
        if let Err((step, e)) = mounts::apply(cmd) {
            fail(msg, step, i as u32, e);
        }
    }
    if let Err((step, e)) = mounts::leave_base() {
        fail(msg, step, 0, e);
    }
    if p.new_net {
        if let Err(e) = namespaces::loopback_up() {
            fail(msg, Step::Loopback, 0, e);
        }
    }

    // Confinement, which the program inherits. Non-dumpable: the program
    // may neither ptrace init nor open its /proc entries (root, fds).
    if let Err(e) = sys::prctl(libc::PR_SET_DUMPABLE, 0) {
        fail(msg, Step::NoNewPrivs, 0, e);
    }
    if let Err(e) = sys::prctl5(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) {
        fail(msg, Step::NoNewPrivs, 0, e);
    }
    if let Some(ll) = &p.landlock {
        if let Err((step, i, e)) = landlock::apply(ll) {
            fail(msg, step, i, e);
        }
    }
    if let Err(e) = caps::drop_all(&p.caps) {
        fail(msg, Step::Capabilities, 0, e);
    }
    if let Err(e) = seccomp::install(&p.seccomp) {
        fail(msg, Step::Seccomp, 0, e);
    }
    // Nothing inherited crosses into the sandbox but stdin, stdout, stderr
    // and our pipe to antimony.
    close_all_but(msg);

    let program = start_program(p, msg);
    let _ = Message::Started { pid: program }.send(msg);
    serve(program, msg)
}

fn close_all_but(keep: RawFd) {
    if keep > 3 {
        let _ = sys::close_range(3, keep as u32 - 1, 0);
    }
    let _ = sys::close_range(keep as u32 + 1, u32::MAX, 0);
}

/// Forks the program. Returns its PID once it has executed; reports a
/// failure to execute as a set-up failure.
fn start_program(p: &Prepared, msg: RawFd) -> libc::pid_t {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills a two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        fail(msg, Step::Fork, 0, Errno::last());
    }
    let [read_end, write_end] = fds;
    let pid = match sys::clone(libc::SIGCHLD as libc::c_ulong, None) {
        Ok(pid) => pid,
        Err(e) => fail(msg, Step::Fork, 0, e),
    };
    if pid == 0 {
        sys::close(read_end);
        exec_program(p, write_end);
    }
    sys::close(write_end);
    // The pipe closes on a successful exec (O_CLOEXEC); otherwise the
    // program's child writes the failed step and errno.
    let mut buf = [0u8; 8];
    match sys::read_full(read_end, &mut buf) {
        Ok(8) => {
            let step = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
            let errno = Errno::from_raw(i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]));
            let step = if step == Step::Setsid as u32 {
                Step::Setsid
            } else {
                Step::Exec
            };
            let mut status = 0;
            // SAFETY: reaping our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            fail(msg, step, 0, errno);
        }
        _ => {
            sys::close(read_end);
            pid
        }
    }
}

/// In the program's process: a new session (no controlling terminal, so no
/// TIOCSTI into the caller's shell), default signals, the working folder,
/// every descriptor above 2 closed at exec, then exec.
fn exec_program(p: &Prepared, report: RawFd) -> ! {
    let fail_with = |step: Step, e: Errno| -> ! {
        let mut buf = [0u8; 8];
        buf[0..4].copy_from_slice(&(step as u32).to_ne_bytes());
        buf[4..8].copy_from_slice(&(e as i32).to_ne_bytes());
        let _ = sys::write_all(report, &buf);
        sys::exit(127)
    };
    // SAFETY: an all-zero sigaction with SIG_DFL is valid; sigaction and
    // sigprocmask take pointers to locals.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::umask(p.umask);
    }
    // SAFETY: setsid takes no arguments.
    if unsafe { libc::setsid() } < 0 {
        fail_with(Step::Setsid, Errno::last());
    }
    if sys::chdir(&p.cwd).is_err() && sys::chdir(&p.home).is_err() {
        let _ = sys::chdir(c"/");
    }
    let _ = sys::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC);
    // SAFETY: program, argv and envp are NUL-terminated strings and
    // NULL-terminated pointer arrays built before the fork.
    unsafe { libc::execve(p.program.as_ptr(), p.argv.as_ptr(), p.envp.as_ptr()) };
    fail_with(Step::Exec, Errno::last())
}

/// PID 1's loop: every signal is blocked (antimony blocked them before the
/// fork) and taken with sigwaitinfo. SIGCHLD reaps everything that exited;
/// any other signal goes to the program. When the program exits, init
/// reports its status and exits, and the kernel kills what is left.
fn serve(program: libc::pid_t, msg: RawFd) -> ! {
    // SAFETY: sigfillset/sigwaitinfo/waitpid/kill with pointers to locals.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        let mut info: libc::siginfo_t = std::mem::zeroed();
        loop {
            let sig = libc::sigwaitinfo(&all, &mut info);
            if sig < 0 {
                continue;
            }
            if sig != libc::SIGCHLD {
                libc::kill(program, sig);
                continue;
            }
            loop {
                let mut status = 0;
                let pid = libc::waitpid(-1, &mut status, libc::WNOHANG);
                if pid <= 0 {
                    break;
                }
                if pid == program {
                    let _ = Message::Exited { status }.send(msg);
                    sys::exit(0);
                }
            }
        }
    }
}
