//! The hook runtime: one type of hook, one runner.
//!
//! Every hook of every event (`pre`, `started`, `stopping`, `post`, the
//! drop-ins, reusable hooks) is planned into a `PlannedHook` by
//! `plan::hooks`, which owns their definitions (reusable hooks, drop-in
//! folders); this folder only runs them, each as a `task::Task` driven by
//! the pipeline's event loop. Commands come from the plan as a program and
//! an argv (scripts are `/usr/bin/bash -c CONTENT NAME ARGS…`), never a
//! shell string built from data; the environment is set on the hook's
//! command (cleared unless `env = true`), never by changing antimony's own.
//! It may use `plan` (what to run) and `profile` (the hook model), never
//! `pipeline`, which drives it.
//!
//! - `input`: the JSON a hook reads on stdin (`stdin = true`);
//! - `output`: a hook's stdout and stderr, passed on, kept and parsed;
//! - `state`: state kept between runs, and the lock that serializes them;
//! - `records`: the run records `antimony log` shows;
//! - `spawn`: starting a hook on the host;
//! - `task`: one running hook.

pub mod groups;
after_fork!(pub mod guardian);
pub mod input;
pub mod output;
pub mod records;
after_fork!(pub mod spawn);
pub mod state;
pub mod task;

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::host::Host;
use crate::plan::{Plan, PlannedHook};
use crate::profile::{HomePolicy, Identity};
use crate::signals;
use spawn::HostCommand;

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
#[error("{label} {failure}{}", message.as_ref().map(|m| format!(": {}", crate::text::escape_line(m))).unwrap_or_default())]
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

/// The hook's command on the host: its program and arguments, and an
/// environment of its own (cleared unless `env = true`), never antimony's
/// own changed. `pid` is the program's host PID, given to `started` and
/// `stopping` hooks as `ANTIMONY_PID`.
pub fn command(h: &PlannedHook, cx: &Context, pid: Option<u32>) -> std::io::Result<HostCommand> {
    let pid = pid.map(|p| OsString::from(p.to_string()));
    let mut env: Vec<(&OsStr, &OsStr)> = Vec::new();
    if h.hook.env {
        env.extend(
            cx.host_env
                .iter()
                .map(|(k, v)| (k.as_os_str(), v.as_os_str())),
        );
    }
    let ours = [
        ("ANTIMONY_NAME", Some(OsStr::new(&cx.name))),
        ("ANTIMONY_CACHE", Some(cx.cache.as_os_str())),
        ("ANTIMONY_INSTANCE", Some(OsStr::new(&cx.instance))),
        ("ANTIMONY_HOME", cx.home.as_deref().map(|h| h.as_os_str())),
        ("ANTIMONY_PID", pid.as_deref()),
    ];
    for (k, v) in ours {
        // Set here, they replace what the host's environment had.
        env.retain(|(key, _)| *key != OsStr::new(k));
        if let Some(v) = v {
            env.push((OsStr::new(k), v));
        }
    }
    let mut cmd = HostCommand::new(
        h.exec.as_os_str(),
        h.args.iter().map(|a| a.as_os_str()),
        env,
    )?;
    cmd.drop_to = match h.hook.identity {
        Identity::User => cx.user,
        Identity::System => None,
    };
    Ok(cmd)
}
