//! Joining a running instance of a `single_instance` profile: a later
//! `antimony run` runs its command in it (`client::enter`: the instance's
//! init starts it, with exactly the sandbox's confinement and none of our
//! descriptors), after binding the files its arguments name into the
//! sandbox (`sandbox::forward`).
//!
//! The sandbox is reached through its program's process: a pidfd pins it,
//! and it must be, after the pidfd was opened, a child of a child of the
//! instance's antimony (verified by the registry with its start time), so
//! that a PID reused meanwhile never leads into another namespace.

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::InstanceError;
use super::registry::Found;
use crate::sandbox::forward::{self, Item};

/// A host file or folder to forward into the instance.
#[derive(Debug, Clone)]
pub struct File {
    /// On the host, links resolved.
    pub source: PathBuf,
    pub is_dir: bool,
    pub writable: bool,
}

/// The instance of `profile` to join, if one runs (the oldest, should
/// several: `--new-instance` started the others on purpose).
pub fn running(host: &crate::host::Host, profile: &str) -> Option<Found> {
    // Listed oldest first.
    super::registry::list(host)
        .into_iter()
        .find(|f| f.info.profile == profile)
}

/// A pidfd of the instance's program, checked to be inside its sandbox.
fn sandbox_pidfd(found: &Found) -> Result<OwnedFd, InstanceError> {
    let id = found.info.instance.clone();
    let pid = found.info.pid;
    // SAFETY: pidfd_open has no pointer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(InstanceError::NotInSandbox { id, pid });
    }
    // SAFETY: pidfd_open just returned this descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // Its parent is the sandbox's init, whose parent is the antimony the
    // record names (checked now, after the pidfd pinned the process).
    let init: Option<u32> = crate::procfs::read_stat_field(pid, 4);
    let supervisor: Option<u32> = init.and_then(|i| crate::procfs::read_stat_field(i, 4));
    if supervisor != Some(found.info.antimony_pid)
        || super::registry::start_time(found.info.antimony_pid) != Some(found.info.antimony_start)
    {
        return Err(InstanceError::NotInSandbox { id, pid });
    }
    Ok(fd)
}

/// Binds `files` into the running instance under `area`; returns where
/// each is seen inside. `tag` names this run's folders there.
pub fn forward(
    found: &Found,
    tag: &str,
    area: &Path,
    files: &[File],
) -> Result<Vec<PathBuf>, InstanceError> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let id = || found.info.instance.clone();
    let shown = |f: &File| f.source.display().to_string();
    let folders = forward::folder_names(tag, files.len());
    let mut items = Vec::with_capacity(files.len());
    let mut inside = Vec::with_capacity(files.len());
    for (f, folder) in files.iter().zip(&folders) {
        let name = f.source.file_name().unwrap_or(std::ffi::OsStr::new("file"));
        let c = |b: &[u8]| {
            CString::new(b).map_err(|_| InstanceError::Forward {
                id: id(),
                file: shown(f),
                step: forward::ForwardStep::CopyFile,
                errno: nix::errno::Errno::EINVAL,
            })
        };
        items.push(Item {
            source: c(f.source.as_os_str().as_bytes())?,
            folder_name: c(folder.as_bytes())?,
            name: c(name.as_bytes())?,
            is_dir: f.is_dir,
            writable: f.writable,
        });
        inside.push(forward::inside_path(area, folder, Path::new(name)));
    }
    let pidfd = sandbox_pidfd(found)?;
    use std::os::fd::AsRawFd;
    forward::into_running(pidfd.as_raw_fd(), area, &items).map_err(|e| InstanceError::Forward {
        id: id(),
        file: e
            .item
            .and_then(|i| files.get(i))
            .map_or_else(|| "files".to_string(), shown),
        step: e.step,
        errno: e.errno,
    })?;
    Ok(inside)
}

/// How long a run waits for another run of the same `single_instance`
/// profile that is starting (its pre-hooks, its sandbox's set-up) before
/// it starts an instance of its own.
const START_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// A lock taken before looking for a running instance and held until this
/// run's instance is registered (or the run ends): two launches at once (a
/// double click) make one instance, the second joining the first.
/// `None` when no lock can be had (no runtime folder: then each starts its
/// own, as without single_instance), or after `START_PATIENCE`.
pub fn start_lock(host: &crate::host::Host, profile: &str) -> Option<OwnedFd> {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;
    let dir = host.runtime_folder("starting").ok()?;
    let fd = open(
        &dir.join(format!("{profile}.lock")),
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::from_bits_truncate(0o600),
    )
    .ok()?;
    let deadline = std::time::Instant::now() + START_PATIENCE;
    loop {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on our own descriptor.
        if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Some(fd);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
