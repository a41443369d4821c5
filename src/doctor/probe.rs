//! The facts `doctor` judges, read from the host: sysctls, AppArmor's
//! securityfs, a user namespace made in a child, Landlock's and seccomp's
//! answers, the cgroup antimony runs in, device nodes opened, programs
//! looked up on PATH, the runtime folder, the session bus and displays.
//! Nothing here changes the host (the child's namespaces die with it).

use std::ffi::CStr;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{BadBase, Cgroup, Device, Facts, RuntimeDir, UsernsFailure};
use crate::host::{Host, HostView, RealHost};

/// `/proc/sys/…` as a number, when the sysctl exists.
fn sysctl(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Gathers the facts for `host`.
pub fn facts(host: &Host) -> Facts {
    let apparmor_enabled = Path::new("/sys/kernel/security/apparmor").is_dir();
    let apparmor_loaded = apparmor_enabled
        .then(|| std::fs::read_to_string("/sys/kernel/security/apparmor/profiles").ok())
        .flatten()
        .map(|list| {
            list.lines()
                .any(|l| l.starts_with(&format!("{} (", super::APPARMOR_NAME)))
        });
    let path = host
        .var("PATH")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| crate::plan::sandbox_path(host.uid).to_string());
    let find = |name: &str| RealHost.find_program(name, &path);
    let runtime_dir = match &host.runtime_dir {
        None => RuntimeDir::Unset,
        Some(p) => match std::fs::metadata(p) {
            Err(_) => RuntimeDir::Missing(p.clone()),
            Ok(m) if !m.is_dir() || m.uid() != host.uid || m.mode() & 0o077 != 0 => {
                RuntimeDir::NotPrivate(p.clone(), m.uid(), m.mode() & 0o7777)
            }
            Ok(_) => RuntimeDir::Private(p.clone()),
        },
    };
    Facts {
        uid: host.uid,
        exe: std::env::current_exe().unwrap_or_default(),
        unprivileged_userns_clone: sysctl("/proc/sys/kernel/unprivileged_userns_clone"),
        max_user_namespaces: sysctl("/proc/sys/user/max_user_namespaces"),
        apparmor_restrict: sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
        apparmor_enabled,
        apparmor_loaded,
        apparmor_file: Path::new(super::APPARMOR_FILE).is_file(),
        userns: try_userns(host.uid, host.gid),
        landlock_abi: RealHost.landlock_abi(),
        seccomp_filter: seccomp_filter(),
        cgroup: cgroup(host.uid),
        fuse: device("/dev/fuse"),
        tun: device("/dev/net/tun"),
        dbus_proxy: find("xdg-dbus-proxy"),
        pasta: find("pasta"),
        gocryptfs: find("gocryptfs"),
        fusermount3: find("fusermount3"),
        runtime_dir,
        bad_base: bad_base(host),
        notifications: notifications(host),
        displays: displays(host),
    }
}

/// The steps of `try_userns`'s child, by the number it reports.
const STEPS: [&str; 6] = [
    "unshare(CLONE_NEWUSER | CLONE_NEWNS)",
    "writing /proc/self/setgroups",
    "writing /proc/self/uid_map",
    "writing /proc/self/gid_map",
    "making the mounts private",
    "mounting a tmpfs",
];

/// Makes a user namespace with a mount namespace in a child, maps the
/// user's ids in it and mounts a tmpfs there: what a sandbox's start does
/// first. (Under AppArmor's restriction the unshare succeeds and the
/// mount does not: only the whole shows whether it works.)
fn try_userns(uid: u32, gid: u32) -> Result<(), UsernsFailure> {
    let uid_map = format!("{uid} {uid} 1\n");
    let gid_map = format!("{gid} {gid} 1\n");
    let mut fds = [0; 2];
    let fail = |step, errno| Err(UsernsFailure { step, errno });
    // SAFETY: pipe2 fills the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return fail("pipe2", nix::errno::Errno::last_raw());
    }
    // SAFETY: the child only makes system calls on memory prepared before
    // the fork (no allocation, no lock) and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: in the forked child, with the pipe's write end.
        unsafe { child(fds[1], uid_map.as_bytes(), gid_map.as_bytes()) }
    }
    let errno = nix::errno::Errno::last_raw();
    // SAFETY: closing our copy of the write end, so that the read below
    // ends when the child does.
    unsafe { libc::close(fds[1]) };
    if pid < 0 {
        // SAFETY: closing the read end we own.
        unsafe { libc::close(fds[0]) };
        return fail("fork", errno);
    }
    let mut report = [0u8; 5];
    let mut got = 0;
    while got < report.len() {
        // SAFETY: reading into the rest of a local buffer.
        let n = unsafe {
            libc::read(
                fds[0],
                report[got..].as_mut_ptr().cast(),
                report.len() - got,
            )
        };
        if n > 0 {
            got += n as usize;
        } else if n == 0 || nix::errno::Errno::last() != nix::errno::Errno::EINTR {
            break;
        }
    }
    // SAFETY: closing the read end we own; reaping our child.
    unsafe {
        libc::close(fds[0]);
        let mut status = 0;
        while libc::waitpid(pid, &mut status, 0) < 0
            && nix::errno::Errno::last() == nix::errno::Errno::EINTR
        {}
    }
    if got == report.len() {
        let step = STEPS.get(report[0] as usize).copied().unwrap_or("?");
        let errno = i32::from_le_bytes([report[1], report[2], report[3], report[4]]);
        return fail(step, errno);
    }
    Ok(())
}

/// The forked child of `try_userns`: each step, and on the first failure
/// its number and errno down the pipe. Never returns.
unsafe fn child(report: libc::c_int, uid_map: &[u8], gid_map: &[u8]) -> ! {
    let failed = |step: u8| -> ! {
        let errno = nix::errno::Errno::last_raw().to_le_bytes();
        let msg = [step, errno[0], errno[1], errno[2], errno[3]];
        // SAFETY: writing a local buffer to the pipe, then leaving
        // without running anything of the parent's (atexit, buffers).
        unsafe {
            libc::write(report, msg.as_ptr().cast(), msg.len());
            libc::_exit(1)
        }
    };
    let write = |path: &CStr, data: &[u8]| -> bool {
        // SAFETY: open, write and close of a proc file with a NUL-terminated
        // path and a buffer of the given length.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return false;
            }
            let ok = libc::write(fd, data.as_ptr().cast(), data.len()) == data.len() as isize;
            libc::close(fd);
            ok
        }
    };
    // SAFETY: unshare with flags only.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) } != 0 {
        failed(0);
    }
    if !write(c"/proc/self/setgroups", b"deny") {
        failed(1);
    }
    if !write(c"/proc/self/uid_map", uid_map) {
        failed(2);
    }
    if !write(c"/proc/self/gid_map", gid_map) {
        failed(3);
    }
    let none = std::ptr::null();
    // SAFETY: mount with NUL-terminated strings or NULL, in this child's
    // own mount namespace (it disappears when the child exits).
    unsafe {
        if libc::mount(
            none,
            c"/".as_ptr(),
            none,
            libc::MS_REC | libc::MS_PRIVATE,
            none.cast(),
        ) != 0
        {
            failed(4);
        }
        if libc::mount(
            c"tmpfs".as_ptr(),
            c"/".as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            none.cast(),
        ) != 0
        {
            failed(5);
        }
        libc::_exit(0)
    }
}

/// Whether the kernel takes seccomp filters: SECCOMP_GET_ACTION_AVAIL
/// answers only where they are built in.
fn seccomp_filter() -> bool {
    const SECCOMP_GET_ACTION_AVAIL: libc::c_ulong = 2;
    let action: u32 = libc::SECCOMP_RET_KILL_PROCESS;
    // SAFETY: the operation reads one u32 from the pointer it is given.
    unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_GET_ACTION_AVAIL,
            0,
            &action as *const u32,
        ) == 0
    }
}

/// The cgroup this process is in, and whether the user may manage it:
/// write its folder (to create cgroups in it) and its cgroup.procs (to
/// move processes). That is what a delegated subtree is (systemd's
/// Delegate=yes makes the user the owner of both).
fn cgroup(uid: u32) -> Cgroup {
    let is_v2 = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    if !is_v2 {
        // A v2 hierarchy mounted elsewhere (systemd's hybrid mode):
        // field 5 of a mountinfo line is the mount point, the type
        // follows the " - ".
        let hybrid = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .find(|l| {
                l.split(" - ")
                    .nth(1)
                    .is_some_and(|t| t.starts_with("cgroup2 "))
            })
            .and_then(|l| l.split(' ').nth(4).map(PathBuf::from));
        return Cgroup::NotV2 { hybrid };
    }
    let Some(own) = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        })
    else {
        return Cgroup::NoOwnCgroup;
    };
    let path = Path::new("/sys/fs/cgroup").join(own.trim_start_matches('/'));
    let writable = |p: &Path| {
        use std::os::unix::ffi::OsStrExt;
        let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: access with a NUL-terminated path.
        unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
    };
    let delegated = std::fs::metadata(&path).is_ok_and(|m| uid == 0 || m.uid() == uid)
        && writable(&path)
        && writable(&path.join("cgroup.procs"));
    if delegated {
        let controllers = std::fs::read_to_string(path.join("cgroup.controllers"))
            .unwrap_or_default()
            .trim()
            .to_string();
        Cgroup::Delegated { path, controllers }
    } else {
        Cgroup::NotDelegated { path }
    }
}

/// A device node opened for reading and writing, as its users open it.
fn device(path: &str) -> Device {
    match std::fs::metadata(path) {
        Err(_) => return Device::Missing,
        Ok(m) if !m.file_type().is_char_device() => return Device::NotCharDevice,
        Ok(_) => {}
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(_) => Device::Usable,
        Err(e) => Device::Refused(e.raw_os_error().unwrap_or(libc::EIO)),
    }
}

/// antimony's runtime folder when it exists and `antimony run` would
/// refuse it (`Host::runtime_folder`'s checks, without making anything).
fn bad_base(host: &Host) -> Option<BadBase> {
    let m = std::fs::symlink_metadata(&host.runtime_base).ok()?;
    let why = if m.file_type().is_symlink() {
        "is a symbolic link".to_string()
    } else if !m.is_dir() {
        "is not a folder".to_string()
    } else if m.uid() != host.uid {
        format!("belongs to uid {}, not to uid {}", m.uid(), host.uid)
    } else if m.mode() & 0o022 != 0 {
        format!("is open to other users (mode {:04o})", m.mode() & 0o7777)
    } else {
        return None;
    };
    Some(BadBase {
        path: host.runtime_base.clone(),
        why,
    })
}

fn notifications(host: &Host) -> Option<(String, bool)> {
    let var = host
        .var("DBUS_SESSION_BUS_ADDRESS")
        .filter(|v| !v.is_empty());
    if var.is_none() {
        // The fallback only where systemd's user bus is.
        host.runtime_dir
            .as_ref()
            .filter(|r| r.join("bus").exists())?;
    }
    let address = crate::notify::session_address(var, host.runtime_dir.as_deref())?;
    let answered = crate::notify::ping(&address, crate::notify::TIMEOUT).is_ok();
    Some((address, answered))
}

/// The Wayland and X11 sockets the environment names, where they exist.
fn displays(host: &Host) -> Vec<(&'static str, PathBuf)> {
    let mut out = Vec::new();
    if let Some(w) = host.var("WAYLAND_DISPLAY").filter(|w| !w.is_empty()) {
        let w = Path::new(w);
        let socket = if w.is_absolute() {
            Some(w.to_path_buf())
        } else {
            host.runtime_dir.as_ref().map(|r| r.join(w))
        };
        if let Some(s) = socket.filter(|s| s.exists()) {
            out.push(("Wayland", s));
        }
    }
    if let Some(d) = host.var("DISPLAY").and_then(|d| d.to_str()) {
        // ":N" or ":N.S": the local socket of display N.
        if let Some(n) = d
            .strip_prefix(':')
            .map(|n| n.split('.').next().unwrap_or(n))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            let s = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
            if s.exists() {
                out.push(("X11", s));
            }
        }
    }
    out
}
