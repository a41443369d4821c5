//! Building the sandbox: the part of the plan that runs after the fork.
//!
//! - `prepare`: the plan turned into C strings, descriptors and BPF, before the fork;
//! - `spawn`: the fork (clone into new namespaces) and antimony's side;
//! - `init`: the child: set-up, confinement, then PID 1;
//! - `namespaces`, `mounts`, `landlock`, `caps`, `seccomp`, `limits`: its steps
//!   (`limits` also makes the sandbox's cgroup, before the fork);
//! - `sys`: the allocation-free syscall wrappers they use;
//! - `protocol`: the typed messages from the child.
//!
//! Code that runs after the fork must not panic (a panic there unwinds or
//! aborts a half-built sandbox, with locks and allocations of a copy of a
//! multi-threaded process): the compiler refuses every panicking construct
//! in this folder — `unwrap`, `expect`, indexing and slicing that can go out
//! of bounds, `panic!`, `unreachable!` — except in unit tests.

mod caps;
pub mod forward;
mod init;
mod landlock;
pub mod limits;
mod mounts;
mod namespaces;
pub mod prepare;
pub mod protocol;
mod seccomp;
pub mod spawn;
pub mod sys;

use std::path::PathBuf;

pub use prepare::{Prepared, prepare};
pub use spawn::{Sandbox, spawn};
use sys::Errno;

use crate::host::Host;
use crate::plan::{Op, Plan};
use protocol::Step;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "antimony has {0} threads; it forks the sandbox only when single-threaded (this is a bug)"
    )]
    Threads(usize),
    #[error("create the sandbox's namespaces (clone): {0}{hint}", hint = clone_hint(*.0))]
    Clone(Errno),
    /// A step inside the new sandbox failed.
    #[error("{what}: {errno}")]
    Setup { what: String, errno: Errno },
    #[error("{what}: {errno}")]
    Syscall { what: &'static str, errno: Errno },
    #[error(
        "{}: {} is a symbolic link (to {}) that antimony will not follow: it is not owned by root in a folder only root can write, so a sandbox could have planted it; name the target instead",
        path.display(), link.display(), target.display()
    )]
    Symlink {
        path: PathBuf,
        link: PathBuf,
        target: PathBuf,
    },
    #[error("{}: too many levels of symbolic links", .0.display())]
    SymlinkLoop(PathBuf),
    #[error("`{0}` contains a NUL byte")]
    Nul(String),
    #[error("landlock: {0}")]
    Landlock(String),
    #[error("the sandbox sent a message antimony does not understand")]
    Protocol,
}

fn clone_hint(e: Errno) -> &'static str {
    match e {
        Errno::EPERM | Errno::ENOSPC | Errno::EACCES => {
            " (are unprivileged user namespaces enabled? see kernel.unprivileged_userns_clone, user.max_user_namespaces and AppArmor's restrict_unprivileged_userns)"
        }
        _ => "",
    }
}

/// Turns a failure reported by the child into an error naming what failed:
/// `mount ~/Downloads on /home/user/Downloads: ENOENT`.
pub fn describe_failure(
    plan: &Plan,
    host: &Host,
    step: Step,
    index: u32,
    errno: Errno,
) -> SandboxError {
    let mount = || plan.mounts.get(index as usize);
    let what = match step {
        Step::Parent => "ask to die with antimony (PR_SET_PDEATHSIG)".into(),
        Step::IdMap => format!("map uid {} and gid {} into the sandbox", plan.uid, plan.gid),
        Step::Propagation => "make the sandbox's mounts private".into(),
        Step::BaseRoot | Step::PivotBase | Step::NewRoot => "build the sandbox's root".into(),
        Step::MountSource | Step::MountPoint | Step::Mount => match mount() {
            Some(m) => {
                let dest = m.dest.display();
                let verb = match step {
                    Step::MountSource => "open",
                    Step::MountPoint => "create the mount point for",
                    _ => "mount",
                };
                match &m.op {
                    Op::Bind { source, .. } if step == Step::MountSource => {
                        format!("open {} to mount it on {dest}", host.display_path(source))
                    }
                    Op::Bind { source, .. } => {
                        format!("{verb} {} on {dest}", host.display_path(source))
                    }
                    Op::Overlay { lower } => {
                        format!(
                            "{verb} an overlay of {} on {dest}",
                            host.display_path(lower)
                        )
                    }
                    Op::Tmpfs { .. } => format!("{verb} a tmpfs on {dest}"),
                    Op::Proc => format!("{verb} /proc on {dest}"),
                    Op::Devpts => format!("{verb} devpts on {dest}"),
                    Op::ReadOnly => format!("make {dest} read-only"),
                    Op::Symlink { target } => {
                        format!("create the link {dest} → {}", target.display())
                    }
                    Op::Dir { .. } => format!("create the folder {dest}"),
                    Op::File { .. } => format!("write {dest}"),
                    Op::Mask => format!("hide {dest}"),
                    Op::Pin => format!("pin {dest}"),
                }
            }
            None => "mount".into(),
        },
        Step::Loopback => "bring up the loopback interface".into(),
        Step::NetworkRule => match plan
            .network
            .isolated
            .as_ref()
            .and_then(|n| n.rules.get(index as usize))
        {
            Some(r) => format!("add the network rule {r} in the sandbox's network namespace"),
            None => "add a network rule".into(),
        },
        Step::NetworkNamespace => "hand the sandbox's network namespace to antimony".into(),
        Step::RootReadOnly => "make the sandbox's root read-only".into(),
        Step::PivotRoot => "switch to the sandbox's root (pivot_root)".into(),
        Step::NoNewPrivs => "set no_new_privs".into(),
        Step::LandlockRule => match plan.landlock.rules.get(index as usize) {
            Some(r) => format!("add the Landlock rule for {}", r.path.display()),
            None => "add a Landlock rule".into(),
        },
        Step::LandlockRestrict => "enforce the Landlock ruleset".into(),
        Step::Capabilities => "drop capabilities".into(),
        Step::Seccomp => "install the seccomp filter".into(),
        Step::Fork => "start the program's process".into(),
        Step::Setsid => "start a new session (setsid)".into(),
        Step::Chdir => format!("change to {}", plan.cwd.display()),
        Step::Exec => format!("execute {}", plan.program.display()),
        Step::Dumpable => "make the sandbox's init non-dumpable".into(),
        Step::Signals => "set up the sandbox's init signal handling (signalfd)".into(),
        Step::Stdio => "give the program its standard descriptors (dup2)".into(),
        Step::Limits => format!(
            "set the sandbox's {} limit (setrlimit)",
            limits::NAMES.get(index as usize).unwrap_or(&"resource")
        ),
        Step::PidMax => format!(
            "set the PID namespace's pid_max to {} (the process limit of a root sandbox)",
            plan.limits.pid_max.unwrap_or(0)
        ),
    };
    SandboxError::Setup { what, errno }
}
