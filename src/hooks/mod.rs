//! Hooks: one type of hook, one runner.
//!
//! Every hook of every event (`pre`, `started`, `stopping`, `post`, the
//! drop-ins, reusable hooks) is planned into a `PlannedHook` and run as a
//! `task::Task`, driven by the pipeline's event loop. Commands come from
//! the plan as a program and an argv (scripts are `/usr/bin/bash -c CONTENT
//! NAME ARGS…`), never a shell string built from data; the environment is
//! set on the `Command` (cleared unless `env = true`), never by changing
//! antimony's own.
//!
//! - `library`: reusable hooks (`hooks/NAME.toml`);
//! - `dropins`: `hooks.d/EVENT/` folders;
//! - `input`: the JSON a hook reads on stdin (`stdin = true`);
//! - `output`: a hook's stdout and stderr, passed on, kept and parsed;
//! - `state`: state kept between runs, and the lock that serializes them;
//! - `records`: the run records `antimony log` shows;
//! - `task`: one running hook.

pub mod dropins;
pub mod input;
pub mod library;
pub mod output;
pub mod records;
pub mod state;
pub mod task;

use std::ffi::OsString;
use std::fmt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::host::Host;
use crate::plan::{Plan, PlannedHook};
use crate::profile::{HomePolicy, Identity};
use crate::signals;

/// Why a hook failed.
#[derive(Debug)]
pub enum Failure {
    Start(String),
    Exit(i32),
    Signal(i32),
    /// It ran past its `timeout` and was stopped.
    TimedOut(Duration),
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
            Failure::TimedOut(t) => write!(f, "timed out after {t:?} and was stopped"),
            Failure::Cancelled { signal, grace } => write!(
                f,
                "was still running {grace:?} after {} cancelled the launch, and was killed",
                signals::name(*signal)
            ),
        }
    }
}

impl Failure {
    /// The failure of a wait status, if it is one.
    pub fn of_status(status: i32) -> Option<Failure> {
        if libc::WIFEXITED(status) {
            match libc::WEXITSTATUS(status) {
                0 => None,
                code => Some(Failure::Exit(code)),
            }
        } else if libc::WIFSIGNALED(status) {
            Some(Failure::Signal(libc::WTERMSIG(status)))
        } else {
            Some(Failure::Exit(1))
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{label} {failure}{}", message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
pub struct HookError {
    pub label: String,
    pub failure: Failure,
    /// What the hook said went wrong (`{"error": {"message": …}}` on stdout).
    pub message: Option<String>,
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
    /// Sets up a run's hook context: the profile's launcher folder is
    /// created, then made read-only.
    pub fn new(plan: &Plan, host: &Host) -> Result<Context, crate::error::Error> {
        let cache = host.cache_home.join("antimony/profiles").join(&plan.name);
        if !plan.hooks.is_empty() {
            use std::os::unix::fs::PermissionsExt;
            // Made once, read-only; only checked after that.
            let ready = std::fs::symlink_metadata(&cache)
                .is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o7777 == 0o555);
            if !ready {
                let io = crate::error::Error::io;
                std::fs::create_dir_all(&cache)
                    .map_err(|e| io(format!("create {}", cache.display()), e))?;
                std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o555))
                    .map_err(|e| io(format!("make {} read-only", cache.display()), e))?;
            }
        }
        let home = match plan.home_policy {
            HomePolicy::Enabled | HomePolicy::Overlay => plan.host_home.clone(),
            _ => None,
        };
        Ok(Context {
            name: plan.name.clone(),
            cache,
            home,
            instance: plan.instance.clone(),
            user: host.on_behalf_of.map(|o| (o.uid, o.gid)),
            host_env: host
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }
}

/// Builds the `Command` for a hook run on the host. `pid` is the program's
/// host PID, given to `started` and `stopping` hooks as `ANTIMONY_PID`.
pub fn command(h: &PlannedHook, cx: &Context, pid: Option<u32>) -> Command {
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
    if let Some(pid) = pid {
        cmd.env("ANTIMONY_PID", pid.to_string());
    }
    let drop_to = match h.hook.identity {
        Identity::User => cx.user,
        Identity::System => None,
    };
    // Without a closure std starts the hook with posix_spawn (a vfork: no
    // copy of antimony's memory), which is most of a hook's cost to the
    // launch. What the hook leaves behind if antimony dies is the guardian's
    // business (`pipeline::guardian`), so the closure is only needed to
    // drop to the user antimony runs on behalf of.
    let Some((uid, gid)) = drop_to else {
        return cmd;
    };
    // SAFETY: getpid before the fork; the closure runs in the forked child
    // and makes only async-signal-safe syscalls (setgroups, setgid, setuid,
    // prctl, getppid, _exit) on values captured by copy.
    let parent = unsafe { libc::getpid() };
    // SAFETY: see above: the closure only makes syscalls.
    unsafe {
        cmd.pre_exec(move || {
            let groups = [gid];
            if libc::setgroups(1, groups.as_ptr()) < 0
                || libc::setgid(gid) < 0
                || libc::setuid(uid) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // On this path (a fork already), the hook also dies with
            // antimony; set after the uid change, which would clear it.
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
