//! The plan's limits applied: resource limits set by init after the fork
//! (values computed before it; then one `prlimit64` each), the PID
//! namespace's `pid_max` for a root sandbox, and the sandbox's cgroup,
//! made on the host before the fork (the sandbox's init is born in it:
//! `sys::clone_into_cgroup`) and removed once the sandbox has ended.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::SandboxError;
use super::sys::{self, Errno};
use crate::plan::LimitsPlan;

/// Names of the limits, by their index in `Prepared::rlimits` (for errors).
pub const NAMES: [&str; 3] = ["process (RLIMIT_NPROC)", "open-file (RLIMIT_NOFILE)", "core (RLIMIT_CORE)"];

/// What init sets.
#[derive(Debug)]
pub struct Prepared {
    /// (resource, value); the core limit is left out when dumps are allowed.
    pub rlimits: Vec<(libc::c_int, libc::rlimit)>,
    /// The decimal `pid_max` to write, for a root sandbox.
    pub pid_max: Option<Vec<u8>>,
}

/// The current limit of this process (antimony's: the user's).
fn current(resource: libc::c_int) -> libc::rlimit {
    let mut cur = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: prlimit64 on ourselves, reading into a local.
    unsafe {
        libc::syscall(
            libc::SYS_prlimit64,
            0,
            resource,
            std::ptr::null::<libc::rlimit>(),
            &mut cur as *mut libc::rlimit,
        )
    };
    cur
}

/// The limits, never above the user's own: a profile lowers them only
/// (raising a hard limit needs a capability the sandbox does not have).
pub fn prepare(plan: &LimitsPlan) -> Prepared {
    let lower = |resource: libc::c_int, value: u64| {
        let cur = current(resource);
        let v = value as libc::rlim_t;
        (
            resource,
            libc::rlimit {
                rlim_cur: cur.rlim_cur.min(v),
                rlim_max: cur.rlim_max.min(v),
            },
        )
    };
    let mut rlimits = vec![
        lower(libc::RLIMIT_NPROC as libc::c_int, plan.processes.value),
        lower(libc::RLIMIT_NOFILE as libc::c_int, plan.open_files.value),
    ];
    if !plan.core_dumps.value {
        rlimits.push(lower(libc::RLIMIT_CORE as libc::c_int, 0));
    }
    Prepared {
        rlimits,
        pid_max: plan.pid_max.map(|n| n.to_string().into_bytes()),
    }
}

/// After the fork, in init (whose children inherit them): the resource
/// limits, hard and soft. Returns the index of the one that failed.
pub fn apply(p: &Prepared) -> Result<(), (u32, Errno)> {
    for (i, (resource, value)) in p.rlimits.iter().enumerate() {
        // SAFETY: prlimit64 on ourselves with a pointer to a prepared value.
        let r = unsafe {
            libc::syscall(
                libc::SYS_prlimit64,
                0,
                *resource,
                value as *const libc::rlimit,
                std::ptr::null_mut::<libc::rlimit>(),
            )
        };
        if r < 0 {
            return Err((i as u32, Errno::last()));
        }
    }
    Ok(())
}

/// After the fork, in init, while it holds every capability of its new
/// user namespace: the PID namespace's `pid_max`. The sysctl acts on the
/// writer's PID namespace, whichever procfs it is reached through.
pub fn set_pid_max(p: &Prepared) -> Result<(), Errno> {
    let Some(value) = &p.pid_max else {
        return Ok(());
    };
    let fd = sys::open(
        c"/proc/sys/kernel/pid_max",
        libc::O_WRONLY | libc::O_CLOEXEC,
        0,
    )?;
    let r = sys::write_all(fd, value);
    sys::close(fd);
    r
}

/// The sandbox's own cgroup, on the host; removed when dropped (once the
/// sandbox has ended, and with it every process in the cgroup).
#[derive(Debug)]
pub struct Cgroup {
    pub dir: OwnedFd,
    path: PathBuf,
}

impl Cgroup {
    /// Makes the cgroup the plan names, with its bounds, before the fork.
    pub fn create(plan: &LimitsPlan) -> Result<Option<Cgroup>, SandboxError> {
        let Some(path) = &plan.cgroup else {
            return Ok(None);
        };
        let failed = |what: &str, e: std::io::Error| SandboxError::Setup {
            what: format!("{what} {}", path.display()),
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        };
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(path)
            .map_err(|e| failed("create the sandbox's cgroup", e))?;
        // From here on, dropped: removed.
        let open = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(path);
        let dir = match open {
            Ok(f) => OwnedFd::from(f),
            Err(e) => {
                let _ = std::fs::remove_dir(path);
                return Err(failed("open the sandbox's cgroup", e));
            }
        };
        let cgroup = Cgroup {
            dir,
            path: path.clone(),
        };
        // memory.max in bytes; cpu.max as "QUOTA PERIOD" in µs (200%: two CPUs' worth of each 100 ms).
        let mut values = Vec::new();
        if let Some(m) = &plan.memory {
            values.push(("memory.max", m.value.to_string()));
        }
        if let Some(c) = &plan.cpu {
            values.push(("cpu.max", format!("{} 100000", u64::from(c.value) * 1000)));
        }
        for (file, value) in values {
            std::fs::write(path.join(file), value)
                .map_err(|e| failed(&format!("write {file} in"), e))?;
        }
        Ok(Some(cgroup))
    }

    pub fn fd(&self) -> i32 {
        self.dir.as_raw_fd()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // The last processes may still be leaving it for a moment.
        let Ok(path) = CString::new(self.path.as_os_str().as_encoded_bytes()) else {
            return;
        };
        let until = Instant::now() + Duration::from_secs(1);
        // SAFETY: rmdir with a NUL-terminated path.
        while unsafe { libc::rmdir(path.as_ptr()) } < 0
            && Errno::last() == Errno::EBUSY
            && Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
