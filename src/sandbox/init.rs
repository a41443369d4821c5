//! The sandbox's first process, after the fork: it builds the sandbox,
//! confines itself, starts the program, and then serves as PID 1: it reaps
//! zombies, passes signals on to the program, starts commands inside the
//! sandbox when antimony asks (hooks with `inside = true`, `antimony
//! enter`), and reports the program's end.
//!
//! A command init starts is a fork of init after it confined itself, so it
//! has exactly the sandbox's confinement: namespaces, root, Landlock domain,
//! seccomp filter, no capabilities, no_new_privs. Each process init starts
//! (the program, each command) then enters a Landlock domain of its own
//! within the sandbox's, so that none can look into another (see
//! `landlock`); one that `antimony enter` gave a terminal gets it as its
//! controlling terminal (see `protocol`).
//!
//! Everything here runs in a child forked from a single-threaded antimony
//! and makes syscalls only: no allocation, no locks, no panics (a failed
//! step is reported to antimony as a typed message and the child exits).
//! Buffers it needs (requests, pointer arrays) were allocated before the fork.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, RawFd};

use super::prepare::Prepared;
use super::protocol::{self, Message, Step};
use super::sys::{self, Errno};
use super::{caps, landlock, limits, mounts, namespaces, seccomp};

/// Exit code of init when set-up failed (antimony reads the message, not this).
const SETUP_FAILED: i32 = 125;

/// How many commands may run inside at once (besides the program).
const MAX_COMMANDS: usize = 64;

/// Where a bare command name is looked up inside when its environment has no PATH.
const DEFAULT_PATH: &[u8] = crate::plan::SANDBOX_PATH.as_bytes();

fn fail(chan: RawFd, step: Step, index: u32, errno: Errno) -> ! {
    let _ = Message::Failed { step, index, errno }.send(chan);
    sys::exit(SETUP_FAILED)
}

/// Entry point of the cloned child. `chan` is its end of the channel to
/// antimony.
pub fn run(p: &mut Prepared, chan: RawFd) -> ! {
    // Die with antimony, even if it is killed with SIGKILL: when PID 1 of
    // a PID namespace dies, the kernel kills everything else in it.
    if let Err(e) = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) {
        fail(chan, Step::Parent, 0, e);
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
    // Other standard descriptors, if antimony gave some (they are above
    // 2: it opened them while it had 0, 1 and 2); the originals are
    // closed with everything else above 2 below.
    if let Some(stdio) = &p.stdio {
        for (target, fd) in stdio.iter().enumerate() {
            // SAFETY: dup2 on descriptors this process inherited.
            if unsafe { libc::dup2(fd.as_raw_fd(), target as RawFd) } < 0 {
                fail(chan, Step::Stdio, 0, Errno::last());
            }
        }
    }
    // SAFETY: PR_SET_NAME with a static NUL-terminated name; umask cannot fail.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, c"antimony-init".as_ptr());
        libc::umask(0o022);
    }

    if let Err(e) = namespaces::write_id_maps(&p.uid_map, &p.gid_map) {
        fail(chan, Step::IdMap, 0, e);
    }
    // While init holds the capabilities of its user namespace.
    if let Err(e) = limits::set_pid_max(&p.limits) {
        fail(chan, Step::PidMax, 0, e);
    }

    // The file system.
    if let Err((step, e)) = mounts::enter_base(&p.base_options, &p.root_options) {
        fail(chan, step, 0, e);
    }
    let newroot = match mounts::open_newroot() {
        Ok(fd) => fd,
        Err((step, e)) => fail(chan, step, 0, e),
    };
    for (i, cmd) in p.mounts.iter_mut().enumerate() {
        if let Err((step, e)) = mounts::apply(newroot, cmd) {
            fail(chan, step, i as u32, e);
        }
    }
    sys::close(newroot);
    if let Err((step, e)) = mounts::leave_base() {
        fail(chan, step, 0, e);
    }
    if p.new_net {
        if let Err(e) = namespaces::loopback_up() {
            fail(chan, Step::Loopback, 0, e);
        }
        if let Err((i, e)) = namespaces::add_rules(&p.net_rules) {
            fail(chan, Step::NetworkRule, i, e);
        }
        // pasta joins the namespace through this descriptor: antimony
        // cannot open /proc/PID/ns/net once init is non-dumpable (below).
        if p.send_netns {
            let sent = sys::open(c"/proc/self/ns/net", libc::O_RDONLY | libc::O_CLOEXEC, 0)
                .and_then(|fd| {
                    let r = Message::Network.send_with_fd(chan, fd);
                    sys::close(fd);
                    r
                });
            if let Err(e) = sent {
                fail(chan, Step::NetworkNamespace, 0, e);
            }
        }
    }

    // Resource limits, which everything started here inherits.
    if let Err((i, e)) = limits::apply(&p.limits) {
        fail(chan, Step::Limits, i, e);
    }

    // Confinement, which the program inherits. Non-dumpable: the program
    // may neither ptrace init nor open its /proc entries (root, fds).
    if let Err(e) = sys::prctl(libc::PR_SET_DUMPABLE, 0) {
        fail(chan, Step::Dumpable, 0, e);
    }
    if let Err(e) = sys::prctl5(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) {
        fail(chan, Step::NoNewPrivs, 0, e);
    }
    if let Some(ll) = &p.landlock {
        if let Err((step, i, e)) = landlock::apply(ll) {
            fail(chan, step, i, e);
        }
    }
    if let Err(e) = caps::drop_all(&p.caps) {
        fail(chan, Step::Capabilities, 0, e);
    }
    if let Err(e) = seccomp::install(&p.seccomp) {
        fail(chan, Step::Seccomp, 0, e);
    }
    // Signals arrive through a signalfd (every signal is blocked: antimony
    // blocked them before the fork).
    // SAFETY: sigfillset and signalfd with a local set.
    let sfd = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::signalfd(-1, &all, libc::SFD_CLOEXEC)
    };
    if sfd < 0 {
        fail(chan, Step::Signals, 0, Errno::last());
    }
    // The domain each process started here enters (see `landlock`).
    let domain = p.landlock.as_ref().map_or(-1, |l| l.own.as_raw_fd());
    // Nothing inherited crosses into the sandbox but stdin, stdout, stderr,
    // our channel to antimony, the signalfd and that domain's ruleset.
    close_all_but(&[chan, sfd, domain]);

    let spec = Exec {
        path: p.program.as_ptr(),
        argv: p.argv.as_ptr(),
        envp: p.envp.as_ptr(),
        cwd: p.cwd.as_ptr(),
        // A working folder the profile names (`dir`) must exist; the
        // default one (where antimony was started) falls back to the home.
        fallback_cwd: if p.cwd_strict {
            std::ptr::null()
        } else {
            p.home.as_ptr()
        },
        stdio: None,
        ctty: -1,
        domain,
        umask: p.umask,
        notify: &p.notify,
        chan,
    };
    // Ready. antimony may still be starting hooks that must run before the
    // program does (attached pre-hooks, started in parallel with this
    // set-up): then it says when to go on, or kills us.
    if p.wait_for_go {
        let mut buf = [0u8; 16];
        loop {
            // SAFETY: receiving into a stack buffer from our channel.
            let n = unsafe { libc::recv(chan, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 && Errno::last() == Errno::EINTR {
                continue;
            }
            match protocol::words(buf.get(..n.max(0) as usize).unwrap_or_default()) {
                Some((protocol::REQ_GO, ..)) => break,
                _ => sys::exit(0),
            }
        }
    }
    let program = match fork_exec(&spec) {
        Ok(pid) => pid,
        Err((step, e)) => fail(chan, step, 0, e),
    };
    let _ = Message::Started { pid: program }.send(chan);
    serve(p, program, chan, sfd, domain)
}

/// Closes every descriptor above 2 but those in `keep` (-1: none).
fn close_all_but(keep: &[RawFd; 3]) {
    let mut keep = *keep;
    keep.sort_unstable();
    let mut from: u32 = 3;
    for k in keep {
        if k < 3 {
            continue;
        }
        if k as u32 > from {
            let _ = sys::close_range(from, k as u32 - 1, 0);
        }
        from = from.max(k as u32 + 1);
    }
    let _ = sys::close_range(from, u32::MAX, 0);
}

/// What to execute and how.
struct Exec<'a> {
    /// The file to execute, or a bare name to look up in `envp`'s PATH.
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    fallback_cwd: *const libc::c_char,
    /// Descriptors for 0, 1 and 2 (else inherited from init).
    stdio: Option<[RawFd; 3]>,
    /// Which of 0, 1 and 2 becomes the controlling terminal (-1: none).
    ctty: RawFd,
    /// The ruleset of the Landlock domain to enter (-1: none).
    domain: RawFd,
    umask: libc::mode_t,
    /// A recording run's notifying filter (empty: none): installed last,
    /// its listener sent to antimony over `chan`.
    notify: &'a [libc::sock_filter],
    chan: RawFd,
}

/// Forks a process that executes `spec`. Returns its PID once it has
/// executed; a failure to execute comes back with its step and errno.
fn fork_exec(spec: &Exec) -> Result<libc::pid_t, (Step, Errno)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills a two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err((Step::Fork, Errno::last()));
    }
    let [read_end, write_end] = fds;
    let pid = match sys::clone(libc::SIGCHLD as libc::c_ulong, None) {
        Ok(pid) => pid,
        Err(e) => {
            sys::close(read_end);
            sys::close(write_end);
            return Err((Step::Fork, e));
        }
    };
    if pid == 0 {
        sys::close(read_end);
        exec_child(spec, write_end);
    }
    sys::close(write_end);
    // The pipe closes on a successful exec (O_CLOEXEC); otherwise the child
    // writes the failed step and errno.
    let mut buf = [0u8; 8];
    let got = sys::read_full(read_end, &mut buf);
    sys::close(read_end);
    if let Ok(8) = got {
        let step = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let errno = Errno::from_raw(i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]));
        let step = Step::from_u32(step).unwrap_or(Step::Exec);
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        return Err((step, errno));
    }
    Ok(pid)
}

/// In the forked process: its stdio, a new session (whose controlling
/// terminal, if any, is the new one init opened for it: never the
/// caller's), default signals, a Landlock domain of its own, the working
/// folder, every descriptor above 2 closed at exec, then exec.
fn exec_child(spec: &Exec, report: RawFd) -> ! {
    let fail_with = |step: Step, e: Errno| -> ! {
        let mut buf = [0u8; 8];
        buf[0..4].copy_from_slice(&(step as u32).to_ne_bytes());
        buf[4..8].copy_from_slice(&(e as i32).to_ne_bytes());
        let _ = sys::write_all(report, &buf);
        sys::exit(127)
    };
    if let Some(stdio) = spec.stdio {
        for (target, fd) in stdio.into_iter().enumerate() {
            // SAFETY: dup2 on descriptors init received for this command.
            if unsafe { libc::dup2(fd, target as RawFd) } < 0 {
                fail_with(Step::Exec, Errno::last());
            }
        }
    }
    // SAFETY: an all-zero sigaction with SIG_DFL is valid; sigaction and
    // sigprocmask take pointers to locals.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in 1..=libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::umask(spec.umask);
    }
    // SAFETY: setsid takes no arguments.
    if unsafe { libc::setsid() } < 0 {
        fail_with(Step::Setsid, Errno::last());
    }
    // SAFETY: TIOCSCTTY with an integer argument (0: steal nothing).
    if spec.ctty >= 0 && unsafe { libc::ioctl(spec.ctty, libc::TIOCSCTTY, 0) } < 0 {
        fail_with(Step::Setsid, Errno::last());
    }
    if spec.domain >= 0 {
        if let Err(e) = landlock::restrict_self(spec.domain) {
            fail_with(Step::LandlockRestrict, e);
        }
    }
    // SAFETY: chdir with NUL-terminated paths built before the fork (or
    // received in a request and NUL-terminated by its parser).
    unsafe {
        if libc::chdir(spec.cwd) < 0 {
            if spec.fallback_cwd.is_null() {
                fail_with(Step::Chdir, Errno::last());
            }
            if libc::chdir(spec.fallback_cwd) < 0 {
                libc::chdir(c"/".as_ptr());
            }
        }
    }
    // Recording: from here on every path the process names waits for
    // antimony's answer, so the listener reaches antimony first (an exec
    // that fails after this is still reported through `report`).
    if !spec.notify.is_empty() {
        match seccomp::install_listener(spec.notify) {
            Ok(listener) => {
                if let Err(e) = Message::Listener.send_with_fd(spec.chan, listener) {
                    fail_with(Step::Seccomp, e);
                }
                sys::close(listener);
            }
            Err(e) => fail_with(Step::Seccomp, e),
        }
    }
    let _ = sys::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC);
    // SAFETY: path is a NUL-terminated string.
    let name = unsafe { CStr::from_ptr(spec.path) }.to_bytes();
    if name.contains(&b'/') {
        // SAFETY: path, argv and envp are NUL-terminated strings and
        // NULL-terminated pointer arrays.
        unsafe { libc::execve(spec.path, spec.argv, spec.envp) };
        fail_with(Step::Exec, Errno::last());
    }
    // A bare name: each folder of PATH in turn, like execvpe(3).
    let path = find_path(spec.envp).unwrap_or(DEFAULT_PATH);
    let mut err = Errno::ENOENT;
    let mut buf = [0u8; 4096];
    for dir in path.split(|&b| b == b':') {
        let len = dir.len() + 1 + name.len();
        if dir.is_empty() || len + 1 > buf.len() {
            continue;
        }
        // DIR/NAME\0, in parts checked to fit (nothing here may panic).
        let Some((d, rest)) = buf.split_at_mut_checked(dir.len()) else {
            continue;
        };
        let Some((slash, rest)) = rest.split_first_mut() else {
            continue;
        };
        let Some((n, rest)) = rest.split_at_mut_checked(name.len()) else {
            continue;
        };
        let Some(nul) = rest.first_mut() else {
            continue;
        };
        d.copy_from_slice(dir);
        *slash = b'/';
        n.copy_from_slice(name);
        *nul = 0;
        // SAFETY: buf holds a NUL-terminated path; argv and envp as above.
        unsafe { libc::execve(buf.as_ptr().cast(), spec.argv, spec.envp) };
        let e = Errno::last();
        if e != Errno::ENOENT {
            err = e;
        }
    }
    fail_with(Step::Exec, err)
}

/// The value of `PATH=` in a NULL-terminated environment array.
fn find_path<'a>(envp: *const *const libc::c_char) -> Option<&'a [u8]> {
    let mut i = 0;
    loop {
        // SAFETY: envp is a NULL-terminated array of C strings.
        let entry = unsafe { *envp.add(i) };
        if entry.is_null() {
            return None;
        }
        // SAFETY: a NUL-terminated string of the array.
        let bytes = unsafe { CStr::from_ptr(entry) }.to_bytes();
        if let Some(v) = bytes.strip_prefix(b"PATH=") {
            return Some(v);
        }
        i += 1;
    }
}

/// Commands running inside at antimony's request: (PID, id).
struct Commands {
    slots: [(libc::pid_t, u32); MAX_COMMANDS],
}

impl Commands {
    fn add(&mut self, pid: libc::pid_t, id: u32) -> bool {
        match self.slots.iter_mut().find(|s| s.0 == 0) {
            Some(slot) => {
                *slot = (pid, id);
                true
            }
            None => false,
        }
    }

    fn full(&self) -> bool {
        self.slots.iter().all(|s| s.0 != 0)
    }

    fn take_pid(&mut self, pid: libc::pid_t) -> Option<u32> {
        let slot = self.slots.iter_mut().find(|s| s.0 == pid)?;
        let id = slot.1;
        *slot = (0, 0);
        Some(id)
    }

    fn pid_of(&self, id: u32) -> Option<libc::pid_t> {
        self.slots
            .iter()
            .find(|s| s.0 != 0 && s.1 == id)
            .map(|s| s.0)
    }
}

/// PID 1's loop. SIGCHLD reaps everything that exited; any other signal
/// goes to the program; requests from antimony start commands inside or
/// signal them. When the program exits, init reports its status
/// and exits, and the kernel kills what is left.
fn serve(p: &mut Prepared, program: libc::pid_t, chan: RawFd, sfd: RawFd, domain: RawFd) -> ! {
    let mut commands = Commands {
        slots: [(0, 0); MAX_COMMANDS],
    };
    // Signals (SIGCHLD among them) wait until antimony's first request (a
    // `Release`, once it has read the program's PID on the host from our
    // list of children): a program that exits at once stays listed, as a
    // zombie, until then.
    let mut held = true;
    loop {
        let mut fds = [
            libc::pollfd {
                fd: chan,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sfd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let count = if held { 1 } else { 2 };
        // SAFETY: `count` valid pollfds.
        if unsafe { libc::poll(fds.as_mut_ptr(), count, -1) } < 0 {
            // Every signal is blocked (no EINTR); any other failure would
            // repeat forever: end the sandbox rather than spin.
            if Errno::last() == Errno::EINTR {
                continue;
            }
            sys::exit(SETUP_FAILED);
        }
        if fds[0].revents != 0 {
            take_request(p, program, chan, domain, &mut commands);
            held = false;
        }
        if fds[1].revents != 0 {
            take_signals(sfd, program, chan, &mut commands);
        }
    }
}

fn take_signals(sfd: RawFd, program: libc::pid_t, chan: RawFd, commands: &mut Commands) {
    const SIZE: usize = std::mem::size_of::<libc::signalfd_siginfo>();
    let mut buf = [0u8; SIZE * 8];
    // SAFETY: reading into a stack buffer from our signalfd.
    let n = unsafe { libc::read(sfd, buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return;
    }
    for chunk in buf.get(..n as usize).unwrap_or_default().chunks_exact(SIZE) {
        // ssi_signo is the first field of signalfd_siginfo.
        let Some(&signo) = chunk.first_chunk::<4>() else {
            continue;
        };
        let sig = u32::from_ne_bytes(signo) as libc::c_int;
        if sig != libc::SIGCHLD {
            // SAFETY: kill with integers.
            unsafe { libc::kill(program, sig) };
            continue;
        }
        loop {
            let mut status = 0;
            // SAFETY: waitpid with a pointer to a local.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == program {
                let _ = Message::Exited { status }.send(chan);
                sys::exit(0);
            }
            if let Some(id) = commands.take_pid(pid) {
                let _ = Message::Reaped { id, status }.send(chan);
            }
        }
    }
}

fn take_request(
    p: &mut Prepared,
    program: libc::pid_t,
    chan: RawFd,
    domain: RawFd,
    commands: &mut Commands,
) {
    // Room for the three descriptors of an Exec request.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: p.request.as_mut_ptr().cast(),
        iov_len: p.request.len(),
    };
    // SAFETY: an all-zero msghdr is valid; its pointers are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg points to valid buffers that outlive the call.
    let n = unsafe { libc::recvmsg(chan, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n == 0 {
        // antimony is gone; so is the sandbox.
        sys::exit(0);
    }
    if n < 0 {
        return;
    }
    // The descriptors that came with the request.
    let mut stdio = [-1 as RawFd; 3];
    let mut count = 0;
    // SAFETY: walking the control messages the kernel wrote into `control`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let len = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<RawFd>();
                for i in 0..len {
                    let fd = std::ptr::read_unaligned(data.add(i));
                    match stdio.get_mut(count) {
                        Some(slot) => {
                            *slot = fd;
                            count += 1;
                        }
                        None => sys::close(fd),
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    let close_stdio = |fds: &[RawFd; 3]| {
        for &fd in fds {
            if fd >= 0 {
                sys::close(fd);
            }
        }
    };
    let Some((kind, id, mask, arg)) =
        protocol::words(p.request.get(..n as usize).unwrap_or_default())
    else {
        close_stdio(&stdio);
        return;
    };
    match kind {
        protocol::REQ_SIGNAL => {
            if id == 0 {
                // SAFETY: kill with integers.
                unsafe { libc::kill(program, arg) };
            } else if let Some(pid) = commands.pid_of(id) {
                // A command leads a session of its own, so its process
                // group is its PID: the signal reaches its children too,
                // like a terminal's signals reach its foreground job.
                // SAFETY: kill with integers.
                if unsafe { libc::kill(-pid, arg) } < 0 {
                    // SAFETY: as above.
                    unsafe { libc::kill(pid, arg) };
                }
            }
            close_stdio(&stdio);
        }
        protocol::REQ_EXEC => {
            let reply = if mask > 0b111 || count != protocol::passed_fds(mask) {
                Err(Errno::EBADF)
            } else if commands.full() {
                Err(Errno::EAGAIN)
            } else {
                start_command(p, n as usize, mask, stdio, domain)
            };
            close_stdio(&stdio);
            let _ = match reply {
                Ok(pid) => {
                    commands.add(pid, id);
                    Message::Spawned { id, pid }.send(chan)
                }
                Err(errno) => Message::SpawnFailed { id, errno }.send(chan),
            };
        }
        _ => close_stdio(&stdio),
    }
}

/// Starts a command antimony asked for; with a terminal mask, on the
/// pseudo-terminal whose slave came first among `passed`: one the client
/// made on the host, which no process of the sandbox can open by a name
/// (the host's devpts is not mounted here; one made in the sandbox's own
/// devpts could be opened by the program, and read). Returns its PID.
/// `passed` is closed by the caller.
fn start_command(
    p: &mut Prepared,
    len: usize,
    mask: u32,
    passed: [RawFd; 3],
    domain: RawFd,
) -> Result<libc::pid_t, Errno> {
    let mut payload = p.request.get(16..len).ok_or(Errno::EINVAL)?;
    let ptrs = &mut p.request_ptrs;
    let settings = if mask != 0 {
        let s = crate::pty::Settings::decode(payload).ok_or(Errno::EINVAL)?;
        payload = payload
            .get(crate::pty::SETTINGS_LEN..)
            .ok_or(Errno::EINVAL)?;
        Some(s)
    } else {
        None
    };
    let Some((argc, _envc, cwd)) = protocol::parse_exec(payload, ptrs) else {
        return Err(Errno::EINVAL);
    };
    // parse_exec filled argc pointers, a NULL, the environment's and a NULL.
    let path = *ptrs.first().ok_or(Errno::EINVAL)?;
    let envp = ptrs.get(argc + 1..).ok_or(Errno::EINVAL)?.as_ptr();
    let mut next = passed.into_iter();
    let slave = match settings {
        Some(s) => {
            let fd = next.next().unwrap_or(-1);
            if !crate::pty::is_terminal(fd) {
                return Err(Errno::ENOTTY);
            }
            // The caller's settings and size, as the client saw them.
            s.apply(fd)?;
            fd
        }
        None => -1,
    };
    let mut stdio = [-1; 3];
    let mut ctty = -1;
    for (i, fd) in stdio.iter_mut().enumerate() {
        if mask & (1 << i) != 0 {
            *fd = slave;
            if ctty < 0 {
                ctty = i as RawFd;
            }
        } else {
            *fd = next.next().unwrap_or(-1);
        }
    }
    let spec = Exec {
        path,
        argv: ptrs.as_ptr(),
        envp,
        cwd: cwd.as_ptr().cast(),
        fallback_cwd: c"/".as_ptr(),
        stdio: Some(stdio),
        ctty,
        domain,
        umask: p.umask,
        notify: &[],
        chan: -1,
    };
    fork_exec(&spec).map_err(|(_, e)| e)
}
