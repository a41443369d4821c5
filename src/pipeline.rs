//! One run, end to end: pre-hooks (blocking or attached), the sandbox,
//! signals passed on while it runs, attached hooks terminated, post-hooks,
//! and the exit status.

use std::os::fd::AsFd;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::error::Error;
use crate::hooks::{self, Attached, Context, HookError};
use crate::host::Host;
use crate::plan::Plan;
use crate::profile::HookEvent;
use crate::sandbox::protocol::Message;
use crate::sandbox::{self, SandboxError};
use crate::signals::{self, Signals};

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// antimony's exit status.
    pub code: u8,
    /// A launcher failure, printed once by `main`.
    pub error: Option<Error>,
    /// Printed as warnings (hooks that may fail, failed).
    pub warnings: Vec<String>,
}

/// The exit status for a wait status: the program's code, or 128+N for a
/// death by signal N.
pub fn exit_code(status: i32) -> u8 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status) as u8
    } else if libc::WIFSIGNALED(status) {
        128u8.wrapping_add(libc::WTERMSIG(status) as u8)
    } else {
        crate::error::EXIT_LAUNCHER_FAILURE
    }
}

/// A random id for this run.
pub fn instance_id() -> String {
    let mut buf = [0u8; 8];
    // SAFETY: getrandom fills the buffer it is given.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != buf.len() as isize {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        buf = (t.as_nanos() as u64 ^ u64::from(std::process::id())).to_ne_bytes();
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the plan.
pub fn run(plan: &Plan, host: &Host) -> Outcome {
    let mut warnings: Vec<String> = plan.warnings.clone();
    let fail = |error: Error, warnings: Vec<String>| Outcome {
        code: crate::error::EXIT_LAUNCHER_FAILURE,
        error: Some(error),
        warnings,
    };
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => return fail(Error::io("install signal handlers", e), warnings),
    };
    let instance = instance_id();
    let cx = match Context::new(plan, host, &instance) {
        Ok(cx) => cx,
        Err(e) => return fail(Error::io("create the profile's cache folder", e), warnings),
    };

    // The profile's home folder exists before the first hook runs: a
    // pre-hook may prepare what the program finds there ($ANTIMONY_HOME).
    for dir in plan.host_dirs_to_create() {
        if let Err(e) = create_private_dir(dir) {
            return fail(e, warnings);
        }
    }

    // 1. Pre-hooks, in order; attached ones keep running.
    let mut attached: Vec<Attached> = Vec::new();
    let mut launch_error: Option<Error> = None;
    let mut interrupted: Option<libc::c_int> = None;
    for h in plan.hooks(HookEvent::Pre) {
        let result = if h.hook.attach {
            hooks::spawn_attached(h, &cx).map(|a| attached.push(a))
        } else {
            let ran = hooks::run_blocking(h, &cx, &signals, Some(plan.grace));
            interrupted = interrupted.or(ran.interrupted);
            ran.result
        };
        if let Err(e) = result {
            if h.hook.can_fail {
                warnings.push(e.to_string());
            } else {
                launch_error = Some(Error::Hook(e));
                break;
            }
        }
        if interrupted.is_some() {
            break;
        }
        interrupted = signals.take().into_iter().find(|&s| signals::is_stop(s));
        if interrupted.is_some() {
            break;
        }
    }

    // 2. The sandbox.
    let mut status = None;
    if launch_error.is_none() && interrupted.is_none() {
        match run_sandbox(plan, host, &signals) {
            Ok(s) => status = Some(s),
            Err(e) => launch_error = Some(e),
        }
    }

    // 3. Attached hooks end with the sandbox.
    warnings.extend(hooks::terminate(attached, plan.grace));

    // 4. Post-hooks, even after a failed launch, so that clean-up happens.
    let mut post_error: Option<HookError> = None;
    for h in plan.hooks(HookEvent::Post) {
        if let Err(e) = hooks::run_blocking(h, &cx, &signals, None).result {
            if h.hook.can_fail {
                warnings.push(e.to_string());
            } else {
                post_error = Some(e);
                break;
            }
        }
    }

    if let Some(e) = launch_error {
        if let Some(p) = post_error {
            warnings.push(p.to_string());
        }
        return fail(e, warnings);
    }
    if let Some(p) = post_error {
        return fail(Error::Hook(p), warnings);
    }
    let code = match (status, interrupted) {
        (Some(s), _) => exit_code(s),
        (None, Some(sig)) => 128u8.wrapping_add(sig as u8),
        (None, None) => crate::error::EXIT_LAUNCHER_FAILURE,
    };
    Outcome {
        code,
        error: None,
        warnings,
    }
}

/// Starts the sandbox and supervises it until the program ends: signals to
/// antimony go to the sandbox's init, which passes them to the program.
/// Returns the program's wait status.
fn run_sandbox(plan: &Plan, host: &Host, signals: &Signals) -> Result<i32, Error> {
    let mut prepared = sandbox::prepare(plan)?;
    let mut sb = sandbox::spawn(&mut prepared)?;
    drop(prepared);

    let mut failure: Option<SandboxError> = None;
    let mut exited: Option<i32> = None;
    let mut messages_open = true;
    loop {
        let (sig_ready, msg_ready, init_gone) = {
            let mut fds = vec![
                PollFd::new(signals.fd(), PollFlags::POLLIN),
                PollFd::new(sb.pidfd.as_fd(), PollFlags::POLLIN),
            ];
            if messages_open {
                fds.push(PollFd::new(sb.messages_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(errno) => {
                    return Err(SandboxError::Syscall {
                        what: "poll",
                        errno,
                    }
                    .into());
                }
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            (
                ready(&fds[0]),
                fds.get(2).is_some_and(ready),
                ready(&fds[1]),
            )
        };
        if sig_ready {
            for sig in signals.take() {
                sb.signal(sig);
            }
        }
        if msg_ready {
            match sb.read_message()? {
                Some(Message::Failed { step, index, errno }) => {
                    failure = Some(sandbox::describe_failure(plan, host, step, index, errno));
                }
                Some(Message::Started { .. }) => {}
                Some(Message::Exited { status }) => exited = Some(status),
                None => messages_open = false,
            }
        }
        if init_gone && !msg_ready {
            // Drain what init wrote before it exited.
            while messages_open {
                match sb.read_message()? {
                    Some(Message::Failed { step, index, errno }) => {
                        failure = Some(sandbox::describe_failure(plan, host, step, index, errno));
                    }
                    Some(Message::Exited { status }) => exited = Some(status),
                    Some(Message::Started { .. }) => {}
                    None => messages_open = false,
                }
            }
            let init_status = sb.reap();
            if let Some(f) = failure {
                return Err(f.into());
            }
            return Ok(exited.unwrap_or(init_status));
        }
    }
}

fn create_private_dir(dir: &std::path::Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(format!("create {}", dir.display()), e))
}
