//! Running hooks on the host.
//!
//! One runner for every hook: the command comes from the plan as a program
//! and an argv (scripts are `/usr/bin/bash -c CONTENT NAME ARGS…`), never a
//! shell string built from data; the environment is set on the `Command`
//! (cleared unless `env = true`), never by changing antimony's own.

pub mod dropins;
pub mod input;
pub mod library;
pub mod output;
pub mod records;
pub mod state;

use std::ffi::OsString;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::host::Host;
use crate::plan::{Plan, PlannedHook};
use crate::profile::{HomePolicy, Identity};
use crate::signals::{self, Signals};

/// Why a hook failed.
#[derive(Debug)]
pub enum Failure {
    Start(std::io::Error),
    Exit(i32),
    Signal(i32),
    /// A stop signal cancelled the launch, was passed on to the pre-hook,
    /// and the hook was still running a grace period later: SIGKILLed.
    Cancelled {
        signal: i32,
        grace: Duration,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Start(e) => write!(f, "could not be started: {e}"),
            Failure::Exit(code) => write!(f, "exited with status {code}"),
            Failure::Signal(sig) => write!(f, "was killed by {}", signals::name(*sig)),
            Failure::Cancelled { signal, grace } => write!(
                f,
                "was still running {grace:?} after {} cancelled the launch, and was killed",
                signals::name(*signal)
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{label} {failure}")]
pub struct HookError {
    pub label: String,
    pub failure: Failure,
}

/// What every hook of one run gets in its environment.
#[derive(Debug, Clone)]
pub struct Context {
    pub name: String,
    pub cache: PathBuf,
    pub home: Option<PathBuf>,
    pub instance: String,
    /// Drop to this uid/gid for `system = "User"` hooks (root on someone's behalf).
    pub user: Option<(u32, u32)>,
    pub host_env: Vec<(OsString, OsString)>,
}

impl Context {
    /// Sets up a run's hook context: the instance id and the profile's
    /// launcher folder (created, then made read-only).
    pub fn new(plan: &Plan, host: &Host, instance: &str) -> std::io::Result<Context> {
        let cache = host.cache_home.join("antimony/profiles").join(&plan.name);
        if plan.hooks.iter().any(|_| true) {
            use std::os::unix::fs::PermissionsExt;
            std::fs::create_dir_all(&cache)?;
            std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o555))?;
        }
        let home = match plan.home_policy {
            HomePolicy::Enabled | HomePolicy::Overlay => plan.host_home.clone(),
            _ => None,
        };
        Ok(Context {
            name: plan.name.clone(),
            cache,
            home,
            instance: instance.to_string(),
            user: host.on_behalf_of.map(|o| (o.uid, o.gid)),
            host_env: host
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }
}

/// Builds the `Command` for a hook.
fn command(h: &PlannedHook, cx: &Context) -> Command {
    let mut cmd = Command::new(&h.exec);
    cmd.args(&h.args);
    cmd.env_clear();
    if h.hook.env {
        cmd.envs(cx.host_env.iter().map(|(k, v)| (k, v)));
    }
    cmd.env("ANTIMONY_NAME", &cx.name)
        .env("ANTIMONY_CACHE", &cx.cache)
        .env("ANTIMONY_INSTANCE", &cx.instance);
    if let Some(home) = &cx.home {
        cmd.env("ANTIMONY_HOME", home);
    }
    let drop_to = match h.hook.identity {
        Identity::User => cx.user,
        Identity::System => None,
    };
    // SAFETY: getpid before the fork; the closure runs in the forked child
    // and makes only async-signal-safe syscalls (setgroups, setgid, setuid,
    // prctl, getppid, _exit) on values captured by copy.
    let parent = unsafe { libc::getpid() };
    // SAFETY: see above: the closure only makes syscalls.
    unsafe {
        cmd.pre_exec(move || {
            if let Some((uid, gid)) = drop_to {
                let groups = [gid];
                if libc::setgroups(1, groups.as_ptr()) < 0
                    || libc::setgid(gid) < 0
                    || libc::setuid(uid) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // A hook does not outlive antimony (set after the uid change,
            // which would clear it).
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    cmd
}

fn pidfd(child: &Child) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open of our own, not yet reaped child.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn failure_of(status: ExitStatus) -> Option<Failure> {
    if status.success() {
        None
    } else if let Some(sig) = status.signal() {
        Some(Failure::Signal(sig))
    } else {
        Some(Failure::Exit(status.code().unwrap_or(1)))
    }
}

/// Result of a blocking hook.
pub struct Ran {
    pub result: Result<(), HookError>,
    /// Stop signals that arrived while it ran (they were passed on to it).
    pub interrupted: Option<libc::c_int>,
}

/// Runs a hook to completion. It shares antimony's terminal, stdin,
/// stdout and stderr, so an interactive hook works; signals antimony gets
/// meanwhile are passed on to it.
///
/// `cancel_grace` (pre-hooks): once a stop signal has been passed on, the
/// hook gets that long to end before it is SIGKILLed. The hook is in
/// antimony's process group, so only the hook itself gets the signal, and a
/// bash script whose foreground command survives a SIGINT goes on running:
/// without this, a cancelled launch could wait for such a hook forever.
pub fn run_blocking(
    h: &PlannedHook,
    cx: &Context,
    sigs: &Signals,
    cancel_grace: Option<Duration>,
) -> Ran {
    let err = |failure| HookError {
        label: h.hook.label(),
        failure,
    };
    let mut child = match command(h, cx).spawn() {
        Ok(c) => c,
        Err(e) => {
            return Ran {
                result: Err(err(Failure::Start(e))),
                interrupted: None,
            };
        }
    };
    let mut interrupted = None;
    // When the hook is SIGKILLed if it has not ended by then.
    let mut deadline: Option<Instant> = None;
    let mut killed = false;
    let status = match pidfd(&child) {
        Ok(pfd) => loop {
            let mut fds = [
                PollFd::new(pfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(sigs.fd(), PollFlags::POLLIN),
            ];
            let timeout = match deadline {
                None => PollTimeout::NONE,
                Some(d) => {
                    let ms = d.saturating_duration_since(Instant::now()).as_millis() + 1;
                    PollTimeout::try_from(ms.min(i32::MAX as u128) as i32)
                        .unwrap_or(PollTimeout::MAX)
                }
            };
            let _ = poll(&mut fds, timeout);
            for sig in sigs.take() {
                // The first stop signal cancels the launch and starts the
                // hook's grace period; later ones are only passed on.
                if signals::is_stop(sig) && interrupted.is_none() {
                    interrupted = Some(sig);
                    deadline = cancel_grace.map(|g| Instant::now() + g);
                }
                // SAFETY: signalling our own child, not yet reaped.
                unsafe { libc::kill(child.id() as libc::pid_t, sig) };
            }
            if let Ok(Some(status)) = child.try_wait() {
                break status;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                // SAFETY: signalling our own child, not yet reaped.
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
                deadline = None;
                killed = true;
            }
        },
        Err(_) => child
            .wait()
            .unwrap_or_else(|_| ExitStatus::from_raw(1 << 8)),
    };
    let failure = match (killed, interrupted, cancel_grace) {
        (true, Some(signal), Some(grace)) if status.signal() == Some(libc::SIGKILL) => {
            Some(Failure::Cancelled { signal, grace })
        }
        _ => failure_of(status),
    };
    Ran {
        result: failure.map_or(Ok(()), |f| Err(err(f))),
        interrupted,
    }
}

/// A hook that runs alongside the sandbox.
pub struct Attached {
    label: String,
    child: Child,
    pidfd: OwnedFd,
    /// Its process group (the hook leads one of its own, so that SIGTERM
    /// reaches whatever it started).
    pgid: libc::pid_t,
    exited: Option<ExitStatus>,
}

/// Starts an attached hook: its own process group, stdin from /dev/null.
pub fn spawn_attached(h: &PlannedHook, cx: &Context) -> Result<Attached, HookError> {
    let err = |failure| HookError {
        label: h.hook.label(),
        failure,
    };
    let mut cmd = command(h, cx);
    cmd.process_group(0).stdin(Stdio::null());
    let child = cmd.spawn().map_err(|e| err(Failure::Start(e)))?;
    let pidfd = pidfd(&child).map_err(|e| err(Failure::Start(e)))?;
    let pgid = child.id() as libc::pid_t;
    Ok(Attached {
        label: h.hook.label(),
        child,
        pidfd,
        pgid,
        exited: None,
    })
}

fn group_alive(pgid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(-pgid, 0) == 0 }
}

/// Ends attached hooks: SIGTERM to each one's process group, then SIGKILL
/// to whatever is still alive after `grace`. Returns warnings about hooks
/// that had failed on their own before.
pub fn terminate(mut hooks: Vec<Attached>, grace: Duration) -> Vec<String> {
    let mut warnings = Vec::new();
    for h in &mut hooks {
        if let Ok(Some(status)) = h.child.try_wait() {
            h.exited = Some(status);
            if let Some(f) = failure_of(status) {
                warnings.push(format!("attached {} {f} while the sandbox ran", h.label));
            }
        }
        // SAFETY: signalling a process group we created.
        unsafe { libc::kill(-h.pgid, libc::SIGTERM) };
    }
    let deadline = Instant::now() + grace;
    loop {
        for h in &mut hooks {
            if h.exited.is_none() {
                if let Ok(Some(s)) = h.child.try_wait() {
                    h.exited = Some(s);
                }
            }
        }
        let alive: Vec<&Attached> = hooks
            .iter()
            .filter(|h| h.exited.is_none() || group_alive(h.pgid))
            .collect();
        if alive.is_empty() {
            return warnings;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        // Wake when a leader exits, or every 20 ms to look at the groups.
        let wait = (deadline - now).min(Duration::from_millis(20));
        let mut fds: Vec<PollFd> = alive
            .iter()
            .filter(|h| h.exited.is_none())
            .map(|h| PollFd::new(h.pidfd.as_fd(), PollFlags::POLLIN))
            .collect();
        let ms = PollTimeout::try_from(wait.as_millis().max(1) as i32).unwrap_or(PollTimeout::ZERO);
        if fds.is_empty() {
            std::thread::sleep(wait);
        } else {
            let _ = poll(&mut fds, ms);
        }
    }
    for h in &mut hooks {
        // SAFETY: signalling a process group we created.
        unsafe { libc::kill(-h.pgid, libc::SIGKILL) };
        if h.exited.is_none() {
            let _ = h.child.wait();
        }
        let _ = h.pidfd.as_raw_fd();
    }
    warnings
}
