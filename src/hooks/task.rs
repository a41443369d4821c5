//! One running hook: its process (on the host, or inside the sandbox by
//! way of its init), its output, its JSON input, its time limits.
//!
//! A task never blocks: the pipeline's event loop polls what `fds` lists
//! and calls back `ready`, `exited` and `tick`. A hook that never reads its
//! stdin, floods its output, or leaves a background child holding its
//! output open cannot stall antimony: input is written as the pipe takes
//! it, output is read as it comes (and only its first KiB kept), and the
//! task ends when its process ends — pipes still open then are handed back
//! to be drained while antimony runs, without being waited for.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::groups::{group_alive, reap_leader};
use super::output::{Captured, Pipe, Stream};
use super::records::HookRecord;
use super::state::{Lock, Reply};
use super::{Context, Failure, command, spawn};
use crate::plan::PlannedHook;
use crate::sandbox::Sandbox;

/// Where the hook's process runs.
#[derive(Debug)]
pub enum Place {
    Host {
        pidfd: OwnedFd,
        /// Its process, which leads a process group of its own (the same
        /// number), which signals reach as a whole (and antimony's
        /// guardian, should antimony die).
        pgid: libc::pid_t,
        /// It was given the terminal (a foreground hook while antimony was
        /// in the terminal's foreground); antimony takes it back when it ends.
        terminal: bool,
    },
    /// Started by the sandbox's init, as command `id`.
    Inside { id: u32, pid: Option<i32> },
}

/// JSON still to be written to the hook's stdin.
#[derive(Debug)]
struct Input {
    fd: OwnedFd,
    data: Vec<u8>,
    written: usize,
}

/// What a task asks the event loop to watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watch {
    Exit,
    Pipe(usize),
    Input,
    /// A descriptor of its relay (a hook run as another user: `spawn`).
    Relay(usize),
}

#[derive(Debug)]
pub struct Task {
    /// Index of the hook in the plan.
    pub hook: usize,
    /// The pipeline waits for it (pre, stopping, post) rather than letting
    /// it run alongside (attached, started).
    pub foreground: bool,
    pub label: String,
    pub event: &'static str,
    pub place: Place,
    pipes: Vec<Pipe>,
    input: Option<Input>,
    pub captured: Captured,
    pub started: Instant,
    pub started_at: f64,
    timeout: Option<Duration>,
    term_at: Option<Instant>,
    kill_at: Option<Instant>,
    timed_out: bool,
    /// The host process has been reaped (`reap`).
    leader_reaped: bool,
    cancelled: Option<(i32, Duration)>,
    /// The wait status, once it has ended.
    pub status: Option<i32>,
    /// Why it could not start.
    pub start_error: Option<String>,
    /// Held while the hook runs (serialized hooks).
    pub lock: Option<Lock>,
    /// antimony's stdin relayed to a hook that runs as another user.
    relay: Option<crate::pty::Relay>,
}

/// How a task ended.
#[derive(Debug)]
pub struct Finished {
    pub failure: Option<Failure>,
    pub reply: Reply,
    pub record: HookRecord,
    /// Output pipes still held open by what the hook left behind.
    pub leftovers: Vec<Pipe>,
    pub lock: Option<Lock>,
}

/// How long, once a hook with a relayed terminal has ended, its last
/// output is waited for while nothing comes, and at most (what it left
/// behind may hold the terminal).
const RELAY_QUIET: Duration = Duration::from_millis(20);
const RELAY_LIMIT: Duration = Duration::from_millis(500);

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((r, w))
}

fn nonblocking(fd: &OwnedFd) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

impl Task {
    fn new(hook: usize, h: &PlannedHook, place: Place) -> Task {
        Task {
            hook,
            foreground: true,
            label: h.hook.label(),
            event: h.hook.event.key(),
            place,
            pipes: Vec::new(),
            input: None,
            captured: Captured::default(),
            started: Instant::now(),
            started_at: super::records::now(),
            timeout: h.hook.timeout,
            term_at: h.hook.timeout.map(|t| Instant::now() + t),
            kill_at: None,
            timed_out: false,
            leader_reaped: false,
            cancelled: None,
            status: None,
            start_error: None,
            lock: None,
            relay: None,
        }
    }

    /// A task that could not start: it is already over.
    pub fn failed_start(hook: usize, h: &PlannedHook, error: String) -> Task {
        let mut t = Task::new(
            hook,
            h,
            Place::Inside {
                id: u32::MAX,
                pid: None,
            },
        );
        t.start_error = Some(error);
        t
    }

    /// Starts a hook on the host, leading a process group of its own.
    /// Foreground hooks share antimony's stdin and get the terminal while
    /// they run, as a shell gives it to a job (an interactive hook works);
    /// one that runs as another user than antimony gets a terminal (or a
    /// pipe) of its own instead, which antimony relays (`spawn`); background
    /// ones get /dev/null. `register`: the guardian's slot, which the hook's
    /// child fills in itself before it executes the hook.
    pub fn host(
        hook: usize,
        h: &PlannedHook,
        cx: &Context,
        foreground: bool,
        pid: Option<u32>,
        input: Option<Vec<u8>>,
        register: Option<&std::sync::atomic::AtomicI32>,
    ) -> Result<Task, String> {
        let stdin = match (&input, foreground) {
            (Some(_), _) => spawn::Input::Pipe,
            (None, true) => spawn::Input::Inherit,
            (None, false) => spawn::Input::Null,
        };
        let child = command(h, cx, pid)
            .and_then(|cmd| spawn::spawn(&cmd, stdin, register))
            .map_err(|e| format!("{}: {}", h.exec.display(), crate::error::io_text(&e)))?;
        let pgid = child.pid;
        // In a session of its own, it has a terminal of its own, if any.
        let terminal = foreground && !child.session && terminal::give(pgid);
        let mut t = Task::new(
            hook,
            h,
            Place::Host {
                pidfd: child.pidfd,
                pgid,
                terminal,
            },
        );
        t.foreground = foreground;
        t.relay = child.relay;
        t.pipes.push(Pipe::new(child.stdout, Stream::Stdout));
        t.pipes.push(Pipe::new(child.stderr, Stream::Stderr));
        if let (Some(fd), Some(data)) = (child.stdin, input) {
            nonblocking(&fd);
            t.input = Some(Input {
                fd,
                data,
                written: 0,
            });
        }
        Ok(t)
    }

    /// Starts a hook inside the sandbox, as command `id` of its init.
    #[allow(clippy::too_many_arguments)]
    pub fn inside(
        hook: usize,
        h: &PlannedHook,
        sandbox: &Sandbox,
        id: u32,
        env: &[Vec<u8>],
        cwd: &[u8],
        input: Option<Vec<u8>>,
    ) -> Result<Task, String> {
        let err = |e: std::io::Error| crate::error::io_text(&e);
        let (out_r, out_w) = pipe().map_err(err)?;
        let (err_r, err_w) = pipe().map_err(err)?;
        let (in_child, in_ours) = match &input {
            Some(_) => {
                let (r, w) = pipe().map_err(err)?;
                (r, Some(w))
            }
            None => (
                OwnedFd::from(std::fs::File::open("/dev/null").map_err(err)?),
                None,
            ),
        };
        let mut argv: Vec<&[u8]> = vec![h.exec.as_os_str().as_encoded_bytes()];
        argv.extend(h.args.iter().map(|a| a.as_encoded_bytes()));
        let env: Vec<&[u8]> = env.iter().map(Vec::as_slice).collect();
        sandbox
            .exec(
                id,
                &argv,
                &env,
                cwd,
                None,
                &[in_child.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()],
            )
            .map_err(|e| e.to_string())?;
        // Init holds its own copies now.
        drop((in_child, out_w, err_w));
        let mut t = Task::new(hook, h, Place::Inside { id, pid: None });
        // What it prints is text from inside the sandbox: escaped.
        t.pipes.push(Pipe::new(out_r, Stream::Stdout).escaped());
        t.pipes.push(Pipe::new(err_r, Stream::Stderr).escaped());
        if let (Some(fd), Some(data)) = (in_ours, input) {
            nonblocking(&fd);
            t.input = Some(Input {
                fd,
                data,
                written: 0,
            });
        }
        Ok(t)
    }

    pub fn is_done(&self) -> bool {
        self.status.is_some() || self.start_error.is_some()
    }

    /// The process group it leads (host hooks).
    pub fn pgid(&self) -> Option<libc::pid_t> {
        match &self.place {
            Place::Host { pgid, .. } => Some(*pgid),
            Place::Inside { .. } => None,
        }
    }

    /// Whether it leads a process group that still has members.
    pub fn group_alive(&self) -> bool {
        self.pgid().is_some_and(group_alive)
    }

    /// The descriptors to poll, with what each is.
    pub fn fds(&self, out: &mut Vec<(RawFd, i16, Watch)>) {
        if let Place::Host { pidfd, .. } = &self.place {
            if self.status.is_none() {
                out.push((pidfd.as_raw_fd(), libc::POLLIN, Watch::Exit));
            }
        }
        for (i, p) in self.pipes.iter().enumerate() {
            if p.open {
                out.push((p.fd.as_raw_fd(), libc::POLLIN, Watch::Pipe(i)));
            }
        }
        if let Some(input) = &self.input {
            out.push((input.fd.as_raw_fd(), libc::POLLOUT, Watch::Input));
        }
        if let Some(relay) = &self.relay {
            let mut fds = Vec::new();
            relay.interest(&mut fds);
            out.extend(fds.into_iter().map(|(fd, ev, i)| (fd, ev, Watch::Relay(i))));
        }
    }

    /// Something it watches is ready.
    pub fn ready(&mut self, what: Watch) {
        match what {
            Watch::Exit => self.reap(),
            Watch::Pipe(i) => {
                if let Some(p) = self.pipes.get_mut(i) {
                    self.captured.drain(p);
                }
            }
            Watch::Input => self.write_input(),
            Watch::Relay(i) => {
                if let Some(relay) = &mut self.relay {
                    relay.ready(i);
                }
            }
        }
    }

    fn write_input(&mut self) {
        let Some(input) = &mut self.input else {
            return;
        };
        while input.written < input.data.len() {
            let rest = &input.data[input.written..];
            // SAFETY: writing a slice we own to a descriptor we own.
            let n = unsafe { libc::write(input.fd.as_raw_fd(), rest.as_ptr().cast(), rest.len()) };
            if n > 0 {
                input.written += n as usize;
                continue;
            }
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::Interrupted => continue,
                std::io::ErrorKind::WouldBlock => return,
                // The hook closed its stdin (or exited): it does not want the rest.
                _ => break,
            }
        }
        // All written (or refused): end of file for the hook.
        self.input = None;
    }

    /// The hook's process has ended: its status is read (`WNOWAIT`), then
    /// what it wrote. If something still holds its output open (a child it
    /// left, most likely in its process group), the process is left
    /// unreaped: a zombie keeps its number, so the group it led cannot be
    /// given to another process while antimony may still signal it (or the
    /// guardian kill it); it is reaped once the group has ended
    /// (`reap_leader`). Otherwise it is reaped now, and the group, most
    /// likely empty, costs one kill(-pgid, 0) to check.
    pub fn reap(&mut self) {
        let &Place::Host { pgid: pid, .. } = &self.place else {
            return;
        };
        if self.status.is_some() {
            return;
        }
        if let Some(status) = exit_status(pid) {
            self.exited(status);
            if self.pipes.iter().all(|p| !p.open) {
                reap_leader(pid);
                self.leader_reaped = true;
            }
        }
    }

    /// Whether the hook's process has ended but is left unreaped (see
    /// `reap`).
    pub fn leader_unreaped(&self) -> bool {
        matches!(self.place, Place::Host { .. }) && self.status.is_some() && !self.leader_reaped
    }

    /// The process ended with this wait status (for inside hooks, reported
    /// by init). What it wrote before it ended is read now.
    pub fn exited(&mut self, status: i32) {
        self.status = Some(status);
        if let Place::Host { terminal, .. } = &mut self.place {
            if std::mem::take(terminal) {
                terminal::take_back();
            }
        }
        // Its terminal's last output is passed on; then the terminal is
        // closed, which hangs it up for anything the hook left behind, and
        // antimony's is put back as it was.
        if let Some(mut relay) = self.relay.take() {
            relay.drain(RELAY_QUIET, RELAY_LIMIT);
        }
        // What it wrote before it ended, its reply included: up to 1 MiB
        // now (more, from children it left, as leftovers later).
        for p in &mut self.pipes {
            if p.open {
                self.captured.drain_up_to(p, 64);
            }
        }
        self.input = None;
    }

    /// Sends a signal: to the hook's process group when it leads one, to
    /// its process otherwise; inside, through init.
    pub fn signal(&self, sandbox: Option<&Sandbox>, sig: libc::c_int) {
        // A hook with a terminal of its own learns of a new window size as
        // any program does: from its terminal (which says SIGWINCH).
        if let (libc::SIGWINCH, Some(relay)) = (sig, &self.relay) {
            if relay.master().is_some() {
                relay.resize();
                return;
            }
        }
        match &self.place {
            Place::Host { pgid, .. } => {
                // SAFETY: signalling a process group we started.
                unsafe { libc::kill(-*pgid, sig) };
            }
            Place::Inside { id, .. } => {
                if let (Some(sb), None) = (sandbox, self.status) {
                    sb.signal_inside(*id, sig);
                }
            }
        }
    }

    /// A stop signal cancelled the launch while this pre-hook ran: it gets
    /// `grace` to end, then SIGKILL.
    pub fn cancel(&mut self, sig: i32, grace: Duration) {
        if self.cancelled.is_none() {
            self.cancelled = Some((sig, grace));
            self.kill_at = Some(Instant::now() + grace);
        }
    }

    /// Asks the hook to end now (SIGTERM), then SIGKILL after `grace`.
    pub fn terminate(&mut self, sandbox: Option<&Sandbox>, grace: Duration) {
        self.signal(sandbox, libc::SIGTERM);
        let at = Instant::now() + grace;
        self.kill_at = Some(self.kill_at.map_or(at, |k| k.min(at)));
    }

    /// The next moment `tick` has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        if self.is_done() {
            return None;
        }
        match (self.term_at, self.kill_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Acts on time limits: SIGTERM at the timeout, SIGKILL after the grace.
    pub fn tick(&mut self, now: Instant, sandbox: Option<&Sandbox>, grace: Duration) {
        if self.is_done() {
            return;
        }
        if self.term_at.is_some_and(|t| now >= t) {
            self.term_at = None;
            self.timed_out = true;
            self.terminate(sandbox, grace);
        }
        if self.kill_at.is_some_and(|t| now >= t) {
            self.kill_at = None;
            self.signal(sandbox, libc::SIGKILL);
        }
    }

    /// Ends the task's bookkeeping.
    pub fn finish(mut self) -> Finished {
        let killed = self
            .status
            .is_some_and(|s| libc::WIFSIGNALED(s) && libc::WTERMSIG(s) == libc::SIGKILL);
        let failure = if let Some(e) = &self.start_error {
            Some(Failure::Start(e.clone()))
        } else if self.timed_out {
            Some(Failure::TimedOut(self.timeout.unwrap_or_default()))
        } else if let (Some((signal, grace)), true) = (self.cancelled, killed) {
            Some(Failure::Cancelled { signal, grace })
        } else {
            self.status.and_then(Failure::of_status)
        };
        let (exit_code, signal) = match self.status {
            Some(s) if libc::WIFEXITED(s) => (Some(libc::WEXITSTATUS(s)), None),
            Some(s) if libc::WIFSIGNALED(s) => (None, Some(libc::WTERMSIG(s))),
            _ => (None, None),
        };
        let status = match &failure {
            None => "ok".to_string(),
            Some(Failure::Start(_)) => "not started".into(),
            Some(Failure::TimedOut(_)) => "timed out".into(),
            Some(Failure::Cancelled { .. }) => "cancelled".into(),
            Some(Failure::Exit(c)) => format!("exit {c}"),
            Some(Failure::Signal(s)) => format!("signal {s}"),
        };
        let reply = std::mem::take(&mut self.captured.reply);
        let error = match (&failure, &reply.error) {
            (Some(_), Some(m)) => Some(m.clone()),
            (Some(f), None) => Some(f.to_string()),
            (None, _) => None,
        };
        let record = HookRecord {
            event: self.event.to_string(),
            name: self.label.clone(),
            started_at: self.started_at,
            duration_ms: self.started.elapsed().as_millis() as u64,
            status,
            exit_code,
            signal,
            error,
            output: String::from_utf8_lossy(&self.captured.head).into_owned(),
            output_truncated: self.captured.truncated,
        };
        let leftovers = self.pipes.into_iter().filter(|p| p.open).collect();
        Finished {
            failure,
            reply,
            record,
            leftovers,
            lock: self.lock,
        }
    }
}

/// The terminal, handed to foreground hooks the way a shell hands it to a
/// job: only when antimony's stdin is the controlling terminal and antimony
/// is in its foreground.
mod terminal {
    /// Gives the terminal to `pgid` if antimony holds it; says whether it did.
    pub fn give(pgid: libc::pid_t) -> bool {
        // SAFETY: isatty, tcgetpgrp and getpgrp take integers.
        let ours = unsafe { libc::isatty(0) == 1 && libc::tcgetpgrp(0) == libc::getpgrp() };
        let given = ours && set(pgid);
        if given {
            // The hook runs already (the spawn returned after its exec):
            // one that read the terminal before it was its own was stopped
            // (SIGTTIN). It goes on now, as a shell's `fg` does.
            // SAFETY: kill with integers, to the hook's own group.
            unsafe { libc::kill(-pgid, libc::SIGCONT) };
        }
        given
    }

    /// Takes the terminal back for antimony's process group.
    pub fn take_back() {
        // SAFETY: getpgrp has no arguments.
        set(unsafe { libc::getpgrp() });
    }

    /// tcsetpgrp with SIGTTOU blocked: a process in a background group that
    /// changes the terminal's foreground group is otherwise stopped.
    fn set(pgid: libc::pid_t) -> bool {
        // SAFETY: sigprocmask and tcsetpgrp with local sets and integers.
        unsafe {
            let mut block: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut block);
            libc::sigaddset(&mut block, libc::SIGTTOU);
            libc::sigprocmask(libc::SIG_BLOCK, &block, &mut old);
            let r = libc::tcsetpgrp(0, pgid);
            libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            r == 0
        }
    }
}

/// The wait status of our child `pid` if it has ended, without reaping
/// it.
fn exit_status(pid: libc::pid_t) -> Option<i32> {
    // SAFETY: a zeroed siginfo_t is valid; waitid fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waitid on our own child, into a local siginfo_t.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if r == 0 {
            break;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return None;
        }
    }
    // SAFETY: waitid filled the child fields (si_pid is 0 if nothing ended).
    let (who, status) = unsafe { (info.si_pid(), info.si_status()) };
    if who == 0 {
        return None;
    }
    // The same encoding as waitpid's status.
    Some(match info.si_code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_DUMPED => status | 0x80,
        _ => status,
    })
}
