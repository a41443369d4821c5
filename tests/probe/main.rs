//! The escape probe: the acceptance tests run it inside the sandbox, where
//! each subcommand attempts one escape and reports on one line.
//!
//! - `BLOCKED <what>: <errno>`, exit 0: the attempt was refused;
//! - `ESCAPED <what>`, exit 1: it succeeded (for the controls and the
//!   network-on runs, that is the expected outcome);
//! - `PROBE-ERROR <why>`, exit 2: bad usage, or the probe could not set up
//!   its attempt.
//!
//! It is a test helper, never installed. Every attempt is harmless if it
//! succeeds: files are only written where the tests point, `/proc` files
//! are only written back with what they hold (or only opened), signals are
//! signal 0, processes started are killed.

use std::ffi::{CStr, CString};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::process::ExitCode;

use nix::errno::Errno;

mod setid;

enum Outcome {
    Blocked(String),
    Escaped(String),
}
use Outcome::{Blocked, Escaped};

type Res = Result<Outcome, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((sub, rest)) = args.split_first() else {
        println!("PROBE-ERROR usage: antimony-probe SUBCOMMAND [ARGS…]");
        return ExitCode::from(2);
    };
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let r = match (sub.as_str(), rest.as_slice()) {
        ("write", [path]) => write(path),
        ("rewrite", [path]) => rewrite(path),
        ("setid", [dir]) => setid::setid(dir),
        ("setfcap-nested", [dir]) => setid::setfcap_nested(dir),
        ("read", [path]) => read(path),
        ("ls", [path]) => ls(path),
        ("absent", paths) if !paths.is_empty() => absent(paths),
        ("host-pid", [pid]) => host_pid(pid),
        ("ptrace", []) => ptrace(),
        ("vm-read", []) => vm_read(),
        ("fds", []) => fds(None),
        ("fds", [n]) => fds(Some(n)),
        ("chroot", []) => chroot(),
        ("mount", []) => mount(),
        ("remount", [path]) => remount(path),
        ("umount", [path]) => umount(path),
        ("newmount", []) => newmount(),
        ("userns", []) => userns(),
        ("setns", []) => setns(),
        ("tiocsti", []) => tiocsti(),
        ("tioclinux", []) => tioclinux(),
        ("keyctl", []) => keyctl(),
        ("caps", []) => caps(),
        ("ids", [uid]) => ids(uid),
        ("exec", [path, args @ ..]) => exec(path, args),
        ("tcp", [port]) => tcp(port),
        ("connect", [host, port]) => connect(host, port),
        ("serve", [port]) => serve(port),
        ("bind", [port]) => bind(port),
        ("unix", [name]) => unix(name),
        ("procs", []) => procs(),
        ("env", [name]) => env(name),
        ("tree", [token, n]) => tree(token, n, false),
        ("tree", [token, n, "exit"]) => tree(token, n, true),
        ("getfd", [pid]) => getfd(pid),
        ("sibling", [token]) => sibling(token),
        ("child-mem", []) => child_mem(),
        ("steal-terminal", [report]) => steal_terminal(report),
        ("denied", []) => denied(),
        ("foreign-arch", []) => foreign_arch(),
        _ => Err(format!("usage: unknown subcommand or arguments: {args:?}")),
    };
    match r {
        Ok(Blocked(s)) => {
            println!("BLOCKED {s}");
            ExitCode::SUCCESS
        }
        Ok(Escaped(s)) => {
            println!("ESCAPED {s}");
            ExitCode::from(1)
        }
        Err(s) => {
            println!("PROBE-ERROR {s}");
            ExitCode::from(2)
        }
    }
}

// ---------------------------------------------------------------- helpers

fn last() -> Errno {
    Errno::last()
}

fn name(e: Errno) -> String {
    format!("{e:?}")
}

fn io_name(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => name(Errno::from_raw(n)),
        None => e.to_string(),
    }
}

fn cstr(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"))
}

/// Several attempts that must all be refused with `want` (the seccomp
/// filter's answer); `results` holds each one's name and its result
/// (`Ok` when the call succeeded).
fn all_refused(what: &str, want: Errno, results: &[(&str, Result<i64, Errno>)]) -> Outcome {
    let mut parts = Vec::new();
    let mut escaped = Vec::new();
    for (call, r) in results {
        match r {
            Err(e) if *e == want => parts.push(format!("{call} {}", name(*e))),
            Err(e) => escaped.push(format!("{call} reached the kernel ({})", name(*e))),
            Ok(v) => escaped.push(format!("{call} succeeded ({v})")),
        }
    }
    if escaped.is_empty() {
        Blocked(format!("{what}: {}", parts.join(", ")))
    } else {
        Escaped(format!("{what}: {}", escaped.join(", ")))
    }
}

/// A raw syscall's result.
fn sys(ret: libc::c_long) -> Result<i64, Errno> {
    if ret < 0 { Err(last()) } else { Ok(ret) }
}

fn close(fd: i64) {
    if fd >= 0 {
        // SAFETY: closing a descriptor this probe opened.
        unsafe { libc::close(fd as i32) };
    }
}

/// Forks a child that sleeps until killed; returns its PID.
fn sleeper() -> Result<libc::pid_t, String> {
    // SAFETY: the probe is single-threaded; the child only calls
    // async-signal-safe functions (pause, _exit).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", name(last())));
    }
    if pid == 0 {
        loop {
            // SAFETY: pause has no preconditions.
            unsafe { libc::pause() };
        }
    }
    Ok(pid)
}

fn kill_and_reap(pid: libc::pid_t) {
    // SAFETY: kill and waitpid on our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

/// Waits for a child and returns its exit code (or 128+signal).
fn reap(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: waiting for our own child with a pointer to a local.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    }
}

// ------------------------------------------------------------- file system

/// Creates (or truncates) `path` and writes to it. No parent is created:
/// a host folder that is not bound is simply not there.
fn write(path: &str) -> Res {
    let what = format!("write {path}");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path);
    match f {
        Err(e) => Ok(Blocked(format!("{what}: {}", io_name(&e)))),
        Ok(mut f) => match f.write_all(b"written by antimony-probe\n") {
            Ok(()) => Ok(Escaped(what)),
            Err(e) => Ok(Blocked(format!(
                "{what}: {} (opened, write failed)",
                io_name(&e)
            ))),
        },
    }
}

/// Opens an existing file for writing and writes back what it holds (a
/// kernel tunable keeps its value). If it cannot be read, it is only
/// opened: success is then already an escape, and nothing is written
/// (`/proc/sysrq-trigger`).
fn rewrite(path: &str) -> Res {
    let what = format!("write {path}");
    let old = std::fs::read(path).ok();
    match std::fs::OpenOptions::new().write(true).open(path) {
        Err(e) => Ok(Blocked(format!("{what}: {}", io_name(&e)))),
        Ok(mut f) => match old {
            None => Ok(Escaped(format!("{what} (opened for writing)"))),
            Some(old) => match f.write_all(&old) {
                Ok(()) => Ok(Escaped(what)),
                Err(e) => Ok(Blocked(format!(
                    "{what}: {} (opened, write failed)",
                    io_name(&e)
                ))),
            },
        },
    }
}

fn read(path: &str) -> Res {
    let what = format!("read {path}");
    let mut buf = Vec::new();
    match std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut buf)) {
        Err(e) => Ok(Blocked(format!("{what}: {}", io_name(&e)))),
        Ok(n) => Ok(Escaped(format!("{what} ({n} bytes)"))),
    }
}

fn ls(path: &str) -> Res {
    let what = format!("list {path}");
    let entries = std::fs::read_dir(path).and_then(|d| {
        d.map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<Vec<_>, _>>()
    });
    match entries {
        Err(e) => Ok(Blocked(format!("{what}: {}", io_name(&e)))),
        Ok(names) => Ok(Escaped(format!("{what}: {}", names.join(" ")))),
    }
}

/// Each path must not exist (lstat fails).
fn absent(paths: &[&str]) -> Res {
    let mut seen = Vec::new();
    let mut errs = Vec::new();
    for p in paths {
        match std::fs::symlink_metadata(p) {
            Ok(_) => seen.push(*p),
            Err(e) => errs.push(format!("{p} {}", io_name(&e))),
        }
    }
    if seen.is_empty() {
        Ok(Blocked(format!("see {}", errs.join(", "))))
    } else {
        Ok(Escaped(format!("see {}", seen.join(" "))))
    }
}

/// The classic breakout: chroot into a subfolder while keeping the working
/// folder outside it, climb with `..`, chroot there.
fn chroot() -> Res {
    let jail = c"/tmp/antimony-probe-jail";
    // SAFETY: mkdir with a valid C string.
    if unsafe { libc::mkdir(jail.as_ptr(), 0o755) } < 0 && last() != Errno::EEXIST {
        return Err(format!("mkdir the jail: {}", name(last())));
    }
    // SAFETY: chroot with a valid C string.
    if unsafe { libc::chroot(jail.as_ptr()) } < 0 {
        return Ok(Blocked(format!("chroot: {}", name(last()))));
    }
    for _ in 0..64 {
        // SAFETY: chdir with a valid C string.
        unsafe { libc::chdir(c"..".as_ptr()) };
    }
    // SAFETY: chroot with a valid C string.
    let second = unsafe { libc::chroot(c".".as_ptr()) };
    Ok(Escaped(format!(
        "chroot succeeded (second chroot: {})",
        if second < 0 {
            name(last())
        } else {
            "ok".into()
        }
    )))
}

fn mount() -> Res {
    let target = c"/tmp/antimony-probe-mnt";
    // SAFETY: mkdir with a valid C string.
    unsafe { libc::mkdir(target.as_ptr(), 0o755) };
    // SAFETY: mount with valid C strings and no data.
    let r = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if r < 0 {
        return Ok(Blocked(format!("mount tmpfs: {}", name(last()))));
    }
    // SAFETY: undo what we just mounted.
    unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    Ok(Escaped("mount tmpfs".into()))
}

/// Remounts a read-only bind read-write (MS_REMOUNT|MS_BIND without
/// MS_RDONLY), then tries to create a file in it.
fn remount(path: &str) -> Res {
    let c = cstr(path)?;
    // SAFETY: mount with a valid C string and NULL source/type/data.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            c.as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if r < 0 {
        return Ok(Blocked(format!(
            "remount {path} read-write: {}",
            name(last())
        )));
    }
    Ok(Escaped(format!("remount {path} read-write")))
}

fn umount(path: &str) -> Res {
    let c = cstr(path)?;
    // SAFETY: umount2 with a valid C string.
    let lazy = sys(unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } as libc::c_long);
    // SAFETY: umount2 with a valid C string.
    let plain = sys(unsafe { libc::umount2(c.as_ptr(), 0) } as libc::c_long);
    Ok(all_refused(
        &format!("umount {path}"),
        Errno::EPERM,
        &[("umount2 MNT_DETACH", lazy), ("umount2", plain)],
    ))
}

/// Every call of the new mount API, with arguments that would work (or at
/// least reach the kernel's checks) if the call were allowed: each must be
/// answered EPERM by the filter.
fn newmount() -> Res {
    const FSOPEN_CLOEXEC: u32 = 1;
    const FSMOUNT_CLOEXEC: u32 = 1;
    const FSCONFIG_CMD_CREATE: u32 = 6;
    const OPEN_TREE_CLONE: u32 = 1;
    const AT_RECURSIVE: u32 = 0x8000;
    const MOVE_MOUNT_F_EMPTY_PATH: u32 = 4;
    const MOUNT_ATTR_RDONLY: u64 = 1;
    const SYS_OPEN_TREE_ATTR: libc::c_long = 467;
    #[repr(C)]
    struct MountAttr {
        set: u64,
        clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        set: 0,
        clr: MOUNT_ATTR_RDONLY,
        propagation: 0,
        userns_fd: 0,
    };
    let size = std::mem::size_of::<MountAttr>();
    let target = c"/tmp/antimony-probe-mnt";
    // SAFETY: mkdir with a valid C string.
    unsafe { libc::mkdir(target.as_ptr(), 0o755) };
    // SAFETY: here and below ("as above"): raw mount-API syscalls with
    // valid C strings, descriptors we own (or -1), and a valid mount_attr of
    // the size passed. Any descriptor returned is closed at the end.
    let fsopen = sys(unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC) });
    let fs = *fsopen.as_ref().unwrap_or(&-1);
    // SAFETY: as above.
    let fsconfig = sys(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs,
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<u8>(),
            std::ptr::null::<u8>(),
            0,
        )
    });
    // SAFETY: as above.
    let fsmount = sys(unsafe { libc::syscall(libc::SYS_fsmount, fs, FSMOUNT_CLOEXEC, 0u32) });
    // SAFETY: as above.
    let fspick =
        sys(unsafe { libc::syscall(libc::SYS_fspick, libc::AT_FDCWD, c"/usr".as_ptr(), 1u32) });
    // SAFETY: as above.
    let open_tree = sys(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c"/usr".as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as u32 | AT_RECURSIVE,
        )
    });
    // SAFETY: as above.
    let open_tree_attr = sys(unsafe {
        libc::syscall(
            SYS_OPEN_TREE_ATTR,
            libc::AT_FDCWD,
            c"/usr".as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as u32,
            &attr as *const MountAttr,
            size,
        )
    });
    let tree = match (&fsmount, &open_tree) {
        (Ok(fd), _) | (_, Ok(fd)) => *fd,
        _ => -1,
    };
    // SAFETY: as above.
    let move_mount = sys(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree,
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    });
    // SAFETY: as above.
    let mount_setattr = sys(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c"/usr".as_ptr(),
            AT_RECURSIVE,
            &attr as *const MountAttr,
            size,
        )
    });
    if move_mount.is_ok() {
        // SAFETY: undo the mount we just made.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
    for fd in [&fsopen, &fsmount, &fspick, &open_tree, &open_tree_attr] {
        close(*fd.as_ref().unwrap_or(&-1));
    }
    Ok(all_refused(
        "new mount API",
        Errno::EPERM,
        &[
            ("fsopen", fsopen),
            ("fsconfig", fsconfig),
            ("fsmount", fsmount),
            ("fspick", fspick),
            ("open_tree", open_tree),
            ("open_tree_attr", open_tree_attr),
            ("move_mount", move_mount),
            ("mount_setattr", mount_setattr),
        ],
    ))
}

// ----------------------------------------------------------- namespaces

/// A nested user namespace: unshare and clone answer EPERM, clone3 ENOSYS
/// (so that libc falls back to the clone the filter can inspect).
fn userns() -> Res {
    let flags = libc::CLONE_NEWUSER;
    // SAFETY: unshare with integer flags. If it succeeded, this process is
    // in a new user namespace: harmless, it only reports and exits.
    let unshare = sys(unsafe { libc::unshare(flags) } as libc::c_long);
    // SAFETY: unshare with integer flags, as above.
    let unshare_ns = sys(
        unsafe { libc::unshare(flags | libc::CLONE_NEWNS | libc::CLONE_NEWPID) } as libc::c_long,
    );
    // SAFETY: clone used like fork (NULL stack); a child, if created, exits
    // at once without touching anything.
    let clone = sys(unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
            0 as libc::c_ulong,
        )
    });
    if clone == Ok(0) {
        // SAFETY: the child of the clone above exits at once.
        unsafe { libc::_exit(0) };
    }
    if let Ok(pid) = clone {
        reap(pid as libc::pid_t);
    }
    // struct clone_args (clone3(2)), version 0: 64 bytes.
    let mut args = [0u64; 8];
    args[0] = flags as u64;
    args[4] = libc::SIGCHLD as u64; // exit_signal
    // SAFETY: clone3 with a valid clone_args of the size passed; a child, if
    // created, exits at once.
    let clone3 = sys(unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args.as_ptr(),
            std::mem::size_of_val(&args),
        )
    });
    if clone3 == Ok(0) {
        // SAFETY: the child of the clone3 above exits at once.
        unsafe { libc::_exit(0) };
    }
    if let Ok(pid) = clone3 {
        reap(pid as libc::pid_t);
    }
    let first = all_refused(
        "nested user namespace",
        Errno::EPERM,
        &[
            ("unshare(CLONE_NEWUSER)", unshare),
            (
                "unshare(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWPID)",
                unshare_ns,
            ),
            ("clone(CLONE_NEWUSER)", clone),
        ],
    );
    let second = all_refused("", Errno::ENOSYS, &[("clone3(CLONE_NEWUSER)", clone3)]);
    Ok(match (first, second) {
        (Blocked(a), Blocked(b)) => Blocked(format!("{a}{b}")),
        (Escaped(a), _) => Escaped(a),
        (_, Escaped(b)) => Escaped(format!("nested user namespace{b}")),
    })
}

/// setns into each of the sandbox's own namespaces and into init's (through
/// a pidfd): the filter answers EPERM.
fn setns() -> Res {
    let mut results = Vec::new();
    for ns in ["user", "mnt", "pid", "net", "uts", "ipc", "cgroup"] {
        let path = cstr(&format!("/proc/self/ns/{ns}"))?;
        // SAFETY: open with a valid C string.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(format!("open /proc/self/ns/{ns}: {}", name(last())));
        }
        // SAFETY: setns with a descriptor we own.
        let r = sys(unsafe { libc::setns(fd, 0) } as libc::c_long);
        close(fd as i64);
        results.push((ns, r));
    }
    // SAFETY: pidfd_open with integer arguments.
    let pidfd = sys(unsafe { libc::syscall(libc::SYS_pidfd_open, 1, 0) });
    if let Ok(fd) = pidfd {
        // SAFETY: setns with a descriptor we own.
        let r = sys(
            unsafe { libc::setns(fd as i32, libc::CLONE_NEWNS | libc::CLONE_NEWUSER) }
                as libc::c_long,
        );
        close(fd);
        results.push(("pidfd of PID 1", r));
    }
    let named: Vec<(String, Result<i64, Errno>)> = results
        .into_iter()
        .map(|(n, r)| (format!("setns {n}"), r))
        .collect();
    let refs: Vec<(&str, Result<i64, Errno>)> =
        named.iter().map(|(n, r)| (n.as_str(), *r)).collect();
    Ok(all_refused("setns", Errno::EPERM, &refs))
}

// --------------------------------------------------------------- processes

/// A host process, by PID: signal 0, its /proc entry, a pidfd.
fn host_pid(pid: &str) -> Res {
    let pid: libc::pid_t = pid.parse().map_err(|_| format!("bad PID {pid}"))?;
    // SAFETY: signal 0 only checks for existence and permission.
    let kill = sys(unsafe { libc::kill(pid, 0) } as libc::c_long);
    // SAFETY: pidfd_open with integer arguments; a descriptor returned is
    // closed below.
    let pidfd = sys(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) });
    if let Ok(fd) = pidfd {
        close(fd);
    }
    let stat = std::fs::symlink_metadata(format!("/proc/{pid}"));
    let mut seen = Vec::new();
    let mut errs = Vec::new();
    for (what, r) in [("kill(pid, 0)", kill), ("pidfd_open", pidfd)] {
        match r {
            Ok(_) => seen.push(what.to_string()),
            Err(e) => errs.push(format!("{what} {}", name(e))),
        }
    }
    match stat {
        Ok(_) => seen.push(format!("/proc/{pid}")),
        Err(e) => errs.push(format!("/proc/{pid} {}", io_name(&e))),
    }
    Ok(if seen.is_empty() {
        Blocked(format!("host process {pid}: {}", errs.join(", ")))
    } else {
        Escaped(format!("host process {pid}: {}", seen.join(", ")))
    })
}

/// Only the sandbox's init (PID 1) and the probe itself are in /proc.
fn procs() -> Res {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .map_err(|e| format!("list /proc: {e}"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    let list = pids
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    if pids.iter().all(|&p| p == 1 || p == me) {
        Ok(Blocked(format!(
            "see other processes: /proc holds {list} (self {me})"
        )))
    } else {
        Ok(Escaped(format!(
            "see other processes: /proc holds {list} (self {me})"
        )))
    }
}

/// PTRACE_TRACEME in a child, PTRACE_ATTACH and PTRACE_SEIZE on a child of
/// ours (allowed by the kernel without the filter), and PTRACE_ATTACH on
/// PID 1: each is answered EPERM.
fn ptrace() -> Res {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills a two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(format!("pipe2: {}", name(last())));
    }
    // SAFETY: single-threaded; the child makes syscalls only, then _exit.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(format!("fork: {}", name(last())));
    }
    if child == 0 {
        // SAFETY: PTRACE_TRACEME takes no pointers; write sends the errno
        // (or 0) to the parent from a local.
        unsafe {
            let r = libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            let e: i32 = if r < 0 { *libc::__errno_location() } else { 0 };
            libc::write(fds[1], (&e as *const i32).cast(), 4);
            libc::_exit(0);
        }
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(fds[1]) };
    let mut buf = [0u8; 4];
    // SAFETY: reading into a local 4-byte buffer.
    let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), 4) };
    close(fds[0] as i64);
    reap(child);
    if n != 4 {
        return Err("PTRACE_TRACEME: the child sent nothing".into());
    }
    let e = i32::from_ne_bytes(buf);
    let traceme = if e == 0 {
        Ok(0)
    } else {
        Err(Errno::from_raw(e))
    };

    let target = sleeper()?;
    // SAFETY: ptrace requests on a PID with no pointers; a successful
    // attach is undone by killing the child.
    let attach = sys(unsafe { libc::ptrace(libc::PTRACE_ATTACH, target, 0, 0) });
    // SAFETY: as above.
    let seize = sys(unsafe { libc::ptrace(libc::PTRACE_SEIZE, target, 0, 0) });
    // SAFETY: as above.
    let init = sys(unsafe { libc::ptrace(libc::PTRACE_ATTACH, 1, 0, 0) });
    if init.is_ok() {
        // SAFETY: detach from init at once.
        unsafe { libc::ptrace(libc::PTRACE_DETACH, 1, 0, 0) };
    }
    kill_and_reap(target);
    Ok(all_refused(
        "ptrace",
        Errno::EPERM,
        &[
            ("PTRACE_TRACEME", traceme),
            ("PTRACE_ATTACH child", attach),
            ("PTRACE_SEIZE child", seize),
            ("PTRACE_ATTACH 1", init),
        ],
    ))
}

/// process_vm_readv of ourselves, a child and PID 1, process_vm_writev of
/// ourselves: each is answered EPERM.
fn vm_read() -> Res {
    let target = sleeper()?;
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let source = *b"antimony";
    let mut dest = [0u8; 8];
    let mut call = |pid: libc::pid_t, write: bool| {
        let local = libc::iovec {
            iov_base: dest.as_mut_ptr().cast(),
            iov_len: dest.len(),
        };
        let remote = libc::iovec {
            iov_base: source.as_ptr().cast_mut().cast(),
            iov_len: source.len(),
        };
        // SAFETY: one local and one remote iovec, each valid for 8 bytes of
        // this process's stack. A read (in another process, the same
        // address) fills `dest`; a write to ourselves would copy `dest` over
        // `source`, a local nothing reads afterwards.
        sys(unsafe {
            if write {
                libc::process_vm_writev(pid, &local, 1, &remote, 1, 0) as libc::c_long
            } else {
                libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) as libc::c_long
            }
        })
    };
    let own = call(me, false);
    let child = call(target, false);
    let init = call(1, false);
    let own_write = call(me, true);
    kill_and_reap(target);
    Ok(all_refused(
        "process_vm",
        Errno::EPERM,
        &[
            ("process_vm_readv self", own),
            ("process_vm_readv child", child),
            ("process_vm_readv 1", init),
            ("process_vm_writev self", own_write),
        ],
    ))
}

/// pidfd_getfd of each descriptor 0–63 of `pid` (in the sandbox: init,
/// which holds the pipe to antimony): refused, as the kernel's ptrace check
/// fails (init is not dumpable and the program holds no capability).
fn getfd(pid: &str) -> Res {
    let pid: libc::pid_t = pid.parse().map_err(|_| format!("bad PID {pid}"))?;
    // SAFETY: pidfd_open with integer arguments.
    let pidfd = sys(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })
        .map_err(|e| format!("pidfd_open {pid}: {}", name(e)))?;
    let mut got = Vec::new();
    let mut errs = std::collections::BTreeSet::new();
    for fd in 0..64 {
        // SAFETY: pidfd_getfd with a pidfd we own; a descriptor returned
        // is closed at once.
        match sys(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) }) {
            Ok(new) => {
                close(new);
                got.push(fd.to_string());
            }
            Err(Errno::EBADF) => {}
            Err(e) => {
                errs.insert(name(e));
            }
        }
    }
    close(pidfd);
    let what = format!("take descriptors of process {pid}");
    Ok(if got.is_empty() {
        let errs: Vec<String> = errs.into_iter().collect();
        Blocked(format!("{what}: {}", errs.join(", ")))
    } else {
        Escaped(format!("{what}: got {}", got.join(" ")))
    })
}

/// A process's parent, from /proc/PID/stat.
fn parent_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Whether `pid` is this process or one of its descendants.
fn ours(mut pid: libc::pid_t) -> bool {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    for _ in 0..64 {
        if pid == me {
            return true;
        }
        match parent_of(pid) {
            Some(p) if p > 1 => pid = p,
            _ => return false,
        }
    }
    false
}

/// Live processes (not zombies) whose command line holds `token`.
fn with_token(token: &str) -> Vec<libc::pid_t> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid: &libc::pid_t| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| Some(s.rsplit_once(')')?.1.trim_start().starts_with('Z')))
                .unwrap_or(true);
            !zombie && cmdline.windows(token.len()).any(|w| w == token.as_bytes())
        })
        .collect()
}

/// Every way to look into process `pid` and take what it holds: its
/// descriptors (pidfd_getfd, reopening /proc/PID/fd/N), its memory
/// (/proc/PID/mem, read at its first mapping) and its environment. Each
/// attempt with its result.
fn look_into(pid: libc::pid_t) -> Vec<(String, Result<i64, Errno>)> {
    let mut results = Vec::new();
    // SAFETY: pidfd_open with integer arguments.
    match sys(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) }) {
        Ok(pidfd) => {
            for fd in 0..3 {
                // SAFETY: pidfd_getfd with a pidfd we own; a descriptor
                // returned is closed at once.
                let r = sys(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) });
                if let Ok(new) = r {
                    close(new);
                }
                results.push((format!("pidfd_getfd {fd}"), r));
            }
            close(pidfd);
        }
        Err(e) => results.push(("pidfd_open".into(), Err(e))),
    }
    for fd in 0..3 {
        let r = std::fs::File::open(format!("/proc/{pid}/fd/{fd}"))
            .map(|_| 0)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)));
        results.push((format!("open /proc/PID/fd/{fd}"), r));
    }
    let mem = match std::fs::File::open(format!("/proc/{pid}/mem")) {
        Ok(f) => {
            // The first mapping's start, if the maps say (they need the
            // same permission): one byte read there.
            let at = std::fs::read_to_string(format!("/proc/{pid}/maps"))
                .ok()
                .and_then(|m| {
                    let first = m.lines().next()?.split('-').next()?.to_string();
                    u64::from_str_radix(&first, 16).ok()
                });
            match at {
                Some(at) => {
                    let mut b = [0u8; 1];
                    std::os::unix::fs::FileExt::read_at(&f, &mut b, at)
                        .map(|n| n as i64)
                        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
                }
                // Opened: that alone is the permission to read it.
                None => Ok(0),
            }
        }
        Err(e) => Err(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))),
    };
    results.push(("read /proc/PID/mem".into(), mem));
    let env = std::fs::read(format!("/proc/{pid}/environ"))
        .map(|b| b.len() as i64)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)));
    results.push(("read /proc/PID/environ".into(), env));
    results
}

/// Blocked when every attempt failed, escaped when any worked.
fn verdict(what: String, results: &[(String, Result<i64, Errno>)]) -> Outcome {
    let worked: Vec<&str> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(w, _)| w.as_str())
        .collect();
    if worked.is_empty() {
        let errs: Vec<String> = results
            .iter()
            .map(|(w, r)| format!("{w} {}", r.err().map(name).unwrap_or_default()))
            .collect();
        Blocked(format!("{what}: {}", errs.join(", ")))
    } else {
        Escaped(format!("{what}: {}", worked.join(", ")))
    }
}

/// Looks into a sibling: a process of the same user whose command line
/// holds `token` and that is neither this probe, nor one of its
/// descendants, nor one of its ancestors (the sandbox's init, a clone of
/// antimony, has antimony's command line): an entered command, say.
/// Waited for up to 30 s.
fn sibling(token: &str) -> Res {
    // SAFETY: getpid has no preconditions.
    let mut ancestors = vec![unsafe { libc::getpid() }];
    while let Some(p) = parent_of(ancestors[ancestors.len() - 1]).filter(|&p| p > 0) {
        if ancestors.contains(&p) || ancestors.len() > 64 {
            break;
        }
        ancestors.push(p);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let pid = loop {
        if let Some(&pid) = with_token(token)
            .iter()
            .find(|&&p| !ours(p) && !ancestors.contains(&p))
        {
            break pid;
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("no process with {token} appeared"));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Ok(verdict("look into a sibling".into(), &look_into(pid)))
}

/// The control for `sibling`: the memory, descriptors and environment of
/// a child of this probe (its own descendant, which Landlock leaves it).
fn child_mem() -> Res {
    let child = sleeper()?;
    let results: Vec<_> = look_into(child)
        .into_iter()
        .filter(|(w, _)| !w.starts_with("pidfd"))
        .collect();
    kill_and_reap(child);
    Ok(verdict("look into a child".into(), &results))
}

/// The attack of issue 14 (item 2): forever, looks for any process whose
/// stdin is a terminal and takes a copy of it (pidfd_getfd, or reopening
/// /proc/PID/fd/0); appends to `report` what it takes (`took …`) and what
/// it reads from it (`read …`), and writes `STOLEN` into it now and then.
/// Never ends by itself.
fn steal_terminal(report: &str) -> Res {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::fs::MetadataExt;
    let note = |line: String| {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(report)
        {
            let _ = writeln!(f, "{line}");
        }
    };
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let mut taken: Vec<(OwnedFd, u64)> = Vec::new();
    let mut round = 0u64;
    loop {
        round += 1;
        let pids: Vec<libc::pid_t> = std::fs::read_dir("/proc")
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        for pid in pids.into_iter().filter(|&p| p != me) {
            let mut copies: Vec<(OwnedFd, &str)> = Vec::new();
            // SAFETY: pidfd_open, pidfd_getfd with integers; each descriptor
            // returned is owned at once.
            unsafe {
                let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0);
                if pidfd >= 0 {
                    let fd = libc::syscall(libc::SYS_pidfd_getfd, pidfd, 0, 0);
                    if fd >= 0 {
                        copies.push((OwnedFd::from_raw_fd(fd as i32), "pidfd_getfd"));
                    }
                    libc::close(pidfd as i32);
                }
            }
            if let Ok(f) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY)
                .open(format!("/proc/{pid}/fd/0"))
            {
                copies.push((OwnedFd::from(f), "/proc/PID/fd/0"));
            }
            // The terminal by its name: any slave in the sandbox's devpts
            // (the entered command's, if it were made there).
            for e in std::fs::read_dir("/dev/pts")
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = e.file_name();
                if name
                    .to_str()
                    .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
                {
                    if let Ok(f) = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .custom_flags(libc::O_NOCTTY)
                        .open(e.path())
                    {
                        copies.push((OwnedFd::from(f), "/dev/pts/N"));
                    }
                }
            }
            for (fd, how) in copies {
                // SAFETY: isatty on a descriptor we own.
                if unsafe { libc::isatty(fd.as_raw_fd()) } != 1 {
                    continue;
                }
                let rdev = std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                    .map(|m| m.rdev())
                    .unwrap_or(0);
                if taken.iter().any(|(_, r)| *r == rdev) {
                    continue;
                }
                note(format!("took the terminal {rdev:#x} of PID {pid} by {how}"));
                taken.push((fd, rdev));
            }
        }
        for (fd, rdev) in &taken {
            let mut p = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, no wait; a read into a local
            // buffer; a write of a constant.
            unsafe {
                if libc::poll(&mut p, 1, 0) == 1 && p.revents & libc::POLLIN != 0 {
                    let mut buf = [0u8; 256];
                    let n = libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len());
                    if n > 0 {
                        note(format!(
                            "read from {rdev:#x}: {:?}",
                            String::from_utf8_lossy(&buf[..n as usize])
                        ));
                    }
                }
                if round % 10 == 0 {
                    libc::write(fd.as_raw_fd(), b"STOLEN\r\n".as_ptr().cast(), 8);
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Syscalls of a foreign architecture: an x32 getpid (the number with bit
/// 30 set) is answered EPERM; an i386 getpid (`int 0x80`, in a child) gets
/// the child killed with SIGSYS. Without the filter, x32 would answer
/// ENOSYS or the pid, and i386 the pid (where the kernel emulates i386).
#[cfg(target_arch = "x86_64")]
fn foreign_arch() -> Res {
    const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;
    // SAFETY: getpid takes no arguments, whatever its ABI.
    let x32 = sys(unsafe { libc::syscall(libc::SYS_getpid | X32_SYSCALL_BIT) });
    // SAFETY: single-threaded; the child makes one syscall and exits.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(format!("fork: {}", name(last())));
    }
    if child == 0 {
        let ret: i64;
        // SAFETY: the i386 getpid (number 20) through int 0x80, which takes
        // no arguments; every register the kernel may change is declared
        // clobbered. The child exits right after.
        unsafe {
            std::arch::asm!(
                "int 0x80",
                inlateout("rax") 20i64 => ret,
                lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
                options(nostack),
            );
            libc::_exit(if ret > 0 { 0 } else { 3 });
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child with a pointer to a local.
    unsafe { libc::waitpid(child, &mut status, 0) };
    let i386 = if libc::WIFEXITED(status) {
        match libc::WEXITSTATUS(status) {
            0 => Ok(0),
            _ => Err("i386 getpid failed".to_string()),
        }
    } else if libc::WTERMSIG(status) == libc::SIGSYS {
        Err("i386 getpid killed by SIGSYS".to_string())
    } else {
        Err(format!(
            "i386 getpid killed by signal {} (no i386 emulation?)",
            libc::WTERMSIG(status)
        ))
    };
    Ok(match (x32, i386) {
        (Err(Errno::EPERM), Err(e)) => {
            Blocked(format!("foreign architectures: x32 getpid EPERM, {e}"))
        }
        (x, i) => Escaped(format!(
            "foreign architectures: x32 getpid {}, i386 getpid {}",
            match x {
                Ok(v) => format!("succeeded ({v})"),
                Err(e) => format!("reached the kernel ({})", name(e)),
            },
            match i {
                Ok(_) => "succeeded".to_string(),
                Err(e) => e,
            }
        )),
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn foreign_arch() -> Res {
    Err("foreign-arch: only x86_64 has foreign ABIs this probe knows".into())
}

/// Only 0, 1 and 2 are open (besides the descriptor listing /proc/self/fd),
/// and an inherited number `n` is not a descriptor: `openat(n, "..")` fails
/// with EBADF.
fn fds(n: Option<&&str>) -> Res {
    // SAFETY: opendir with a valid C string.
    let dir = unsafe { libc::opendir(c"/proc/self/fd".as_ptr()) };
    if dir.is_null() {
        return Err(format!("opendir /proc/self/fd: {}", name(last())));
    }
    // SAFETY: dir is a valid DIR*.
    let own = unsafe { libc::dirfd(dir) };
    let mut open = Vec::new();
    loop {
        // SAFETY: dir is a valid DIR*; the entry is read before the next call.
        let ent = unsafe { libc::readdir(dir) };
        if ent.is_null() {
            break;
        }
        // SAFETY: d_name is NUL-terminated within the entry.
        let s = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        if let Ok(fd) = s.to_string_lossy().parse::<i32>() {
            if fd != own {
                open.push(fd);
            }
        }
    }
    // SAFETY: closing the DIR* we opened.
    unsafe { libc::closedir(dir) };
    open.sort_unstable();
    let extra: Vec<String> = open
        .iter()
        .filter(|&&fd| fd > 2)
        .map(|fd| {
            let target = std::fs::read_link(format!("/proc/self/fd/{fd}"))
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            format!("{fd} → {target}")
        })
        .collect();
    if !extra.is_empty() {
        return Ok(Escaped(format!(
            "inherited descriptors: {}",
            extra.join(", ")
        )));
    }
    let list = open
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let Some(n) = n else {
        return Ok(Blocked(format!("inherited descriptors: only {list} open")));
    };
    let n: i32 = n
        .parse()
        .map_err(|_| format!("bad descriptor number {n}"))?;
    // SAFETY: openat with a valid C string; a descriptor returned is closed.
    let fd = unsafe { libc::openat(n, c"..".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd >= 0 {
        let target = std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        close(fd as i64);
        return Ok(Escaped(format!("openat({n}, \"..\") opened {target}")));
    }
    let e = last();
    if e != Errno::EBADF {
        return Ok(Escaped(format!(
            "openat({n}, \"..\") reached the file system ({})",
            name(e)
        )));
    }
    Ok(Blocked(format!(
        "inherited descriptors: only {list} open; openat({n}, \"..\"): {}",
        name(e)
    )))
}

/// Starts a tree of processes that sleep with `token` in their command line
/// and (its last 15 bytes) their name, some of them orphaned into the
/// sandbox's init or in a session of their own, all ignoring SIGTERM and
/// SIGHUP; prints one line once all are started and sleeps too (or, with
/// `exit`, exits at once). Every process exits by itself after a minute at
/// most, so a failed test cannot leave them forever.
fn tree(token: &str, n: &str, exit: bool) -> Res {
    let n: u32 = n.parse().map_err(|_| format!("bad count {n}"))?;
    // The name holds the token's last 15 bytes (all a name can hold).
    let comm = cstr(&token[token.len().saturating_sub(15)..])?;
    let nap = || -> ! {
        // SAFETY: prctl(PR_SET_NAME) with a valid C string of at most 16
        // bytes; signal with SIG_IGN; sleep; _exit. No allocation.
        unsafe {
            libc::prctl(libc::PR_SET_NAME, comm.as_ptr());
            libc::signal(libc::SIGTERM, libc::SIG_IGN);
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            libc::sleep(60);
            libc::_exit(0)
        }
    };
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills a two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(format!("pipe2: {}", name(last())));
    }
    for i in 0..n {
        // SAFETY: single-threaded; the child calls async-signal-safe
        // functions only.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(format!("fork: {}", name(last())));
        }
        if pid > 0 {
            continue;
        }
        match i % 3 {
            // Orphaned: the grandchild is re-parented to the sandbox's init.
            1 => {
                // SAFETY: as above.
                let grandchild = unsafe { libc::fork() };
                if grandchild == 0 {
                    // SAFETY: tell the parent, then sleep.
                    unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) };
                    nap();
                }
                // SAFETY: the middle process leaves at once.
                unsafe { libc::_exit(0) };
            }
            // A session of its own.
            2 => {
                // SAFETY: setsid, then tell the parent.
                unsafe {
                    libc::setsid();
                    libc::write(fds[1], b"x".as_ptr().cast(), 1);
                }
                nap();
            }
            _ => {
                // SAFETY: tell the parent.
                unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) };
                nap();
            }
        }
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(fds[1]) };
    let mut got = 0;
    let mut buf = [0u8; 64];
    while got < n as usize {
        // SAFETY: reading into a local buffer.
        let r = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
        if r <= 0 {
            return Err("the children did not all start".into());
        }
        got += r as usize;
    }
    if exit {
        // The program leaves its children behind.
        return Ok(Blocked(format!("started {n} and left")));
    }
    println!("STARTED {n}");
    let _ = std::io::stdout().flush();
    // Reap the middle processes; then sleep like the others.
    loop {
        // SAFETY: reaping any child with no status wanted.
        if unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } <= 0 {
            break;
        }
    }
    nap()
}

// ------------------------------------------------------------- terminals

/// An ioctl request as the syscall's 64-bit argument (`Ioctl` is c_ulong
/// on some targets and c_int on others).
#[allow(clippy::unnecessary_cast)]
fn request(r: libc::Ioctl) -> u64 {
    r as u64
}

fn stdin_is_tty() -> Result<(), String> {
    // SAFETY: isatty on descriptor 0.
    if unsafe { libc::isatty(0) } == 1 {
        Ok(())
    } else {
        Err("standard input is not a terminal".into())
    }
}

/// Pushes characters into the input of the terminal on stdin, with the
/// plain request and with high bits set (CVE-2019-10063).
fn tiocsti() -> Res {
    stdin_is_tty()?;
    // First make the terminal our controlling terminal, where the program
    // can (it leads a session of its own and the terminal is no other
    // session's): then the kernel's own check (the caller's controlling
    // terminal, or CAP_SYS_ADMIN) lets TIOCSTI through, and only the
    // filter stands in the way.
    // SAFETY: TIOCSCTTY with an integer argument (0: do not steal).
    let ctty = unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
    let ctty = if ctty < 0 {
        format!("TIOCSCTTY {}", name(last()))
    } else {
        "TIOCSCTTY ok".to_string()
    };
    let mut results = Vec::new();
    for (what, req) in [
        ("TIOCSTI", request(libc::TIOCSTI)),
        ("TIOCSTI|1<<32", request(libc::TIOCSTI) | 1 << 32),
        ("TIOCSTI|0xffff<<48", request(libc::TIOCSTI) | 0xffff << 48),
    ] {
        let mut r = Ok(0);
        for c in b"id\n" {
            // SAFETY: the raw ioctl syscall (so that the high bits reach the
            // filter) with a pointer to one byte.
            let x = sys(unsafe { libc::syscall(libc::SYS_ioctl, 0, req, c as *const u8) });
            if x.is_err() {
                r = x;
                break;
            }
        }
        results.push((what, r));
    }
    // Only the filter's EPERM proves the filter: a kernel with
    // dev.tty.legacy_tiocsti=0 answers EIO by itself, with or without it.
    let mut escaped = Vec::new();
    let mut errs = Vec::new();
    for (what, r) in results {
        match r {
            Err(e) if e == Errno::EPERM => errs.push(format!("{what} {}", name(e))),
            Err(e) => escaped.push(format!("{what} not refused by the filter ({})", name(e))),
            Ok(_) => escaped.push(what.to_string()),
        }
    }
    Ok(if escaped.is_empty() {
        Blocked(format!("terminal injection ({ctty}): {}", errs.join(", ")))
    } else {
        Escaped(format!(
            "terminal injection ({ctty}): {}",
            escaped.join(", ")
        ))
    })
}

/// TIOCLINUX (a console request, refused by the filter before the terminal
/// could answer ENOTTY or EINVAL), with and without high bits.
fn tioclinux() -> Res {
    stdin_is_tty()?;
    let mut results = Vec::new();
    for (what, req) in [
        ("TIOCLINUX", request(libc::TIOCLINUX)),
        ("TIOCLINUX|1<<32", request(libc::TIOCLINUX) | 1 << 32),
    ] {
        // Subcode 7: TIOCL_GETSHIFTSTATE (harmless), then a byte of room.
        let mut arg = [7u8, 0];
        // SAFETY: the raw ioctl syscall with a pointer to a 2-byte buffer.
        let r = sys(unsafe { libc::syscall(libc::SYS_ioctl, 0, req, arg.as_mut_ptr()) });
        results.push((what, r));
    }
    Ok(all_refused("console ioctl", Errno::EPERM, &results))
}

fn keyctl() -> Res {
    const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
    const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;
    const KEY_SPEC_PROCESS_KEYRING: libc::c_long = -2;
    // SAFETY: keyctl with integer arguments.
    let get = sys(unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_GET_KEYRING_ID,
            KEY_SPEC_SESSION_KEYRING,
            1 as libc::c_long,
        )
    });
    // SAFETY: add_key with valid C strings and a 1-byte payload.
    let add = sys(unsafe {
        libc::syscall(
            libc::SYS_add_key,
            c"user".as_ptr(),
            c"antimony-probe".as_ptr(),
            b"x".as_ptr(),
            1usize,
            KEY_SPEC_PROCESS_KEYRING,
        )
    });
    // SAFETY: request_key with valid C strings, no callout, no keyring.
    let request = sys(unsafe {
        libc::syscall(
            libc::SYS_request_key,
            c"user".as_ptr(),
            c"antimony-probe".as_ptr(),
            std::ptr::null::<libc::c_char>(),
            0 as libc::c_long,
        )
    });
    Ok(all_refused(
        "keyrings",
        Errno::EPERM,
        &[("keyctl", get), ("add_key", add), ("request_key", request)],
    ))
}

/// Kernel attack surface the filter refuses outright, each called with
/// arguments that do nothing even if the call got through (NULL pointers,
/// a module that does not exist): every answer must be the filter's EPERM.
fn denied() -> Res {
    let null = std::ptr::null::<libc::c_void>();
    let mut results: Vec<(&str, Result<i64, Errno>)> = Vec::new();
    // SAFETY: each raw syscall gets NULL pointers, zero sizes or a valid C
    // string; none can act on anything with such arguments, and any
    // descriptor returned is closed.
    unsafe {
        results.push(("bpf", sys(libc::syscall(libc::SYS_bpf, 5, null, 0))));
        results.push((
            "perf_event_open",
            sys(libc::syscall(libc::SYS_perf_event_open, null, 0, -1, -1, 0)),
        ));
        results.push((
            "userfaultfd",
            sys(libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC)),
        ));
        results.push((
            "io_uring_setup",
            sys(libc::syscall(libc::SYS_io_uring_setup, 1, null)),
        ));
        results.push((
            "io_uring_enter",
            sys(libc::syscall(
                libc::SYS_io_uring_enter,
                -1,
                0,
                0,
                0,
                null,
                0,
            )),
        ));
        results.push((
            "io_uring_register",
            sys(libc::syscall(libc::SYS_io_uring_register, -1, 0, null, 0)),
        ));
        results.push((
            "kexec_load",
            sys(libc::syscall(libc::SYS_kexec_load, 0, 0, null, 0)),
        ));
        results.push((
            "init_module",
            sys(libc::syscall(libc::SYS_init_module, null, 0, c"".as_ptr())),
        ));
        results.push((
            "finit_module",
            sys(libc::syscall(libc::SYS_finit_module, -1, c"".as_ptr(), 0)),
        ));
        results.push((
            "delete_module",
            sys(libc::syscall(
                libc::SYS_delete_module,
                c"antimony_probe_no_such_module".as_ptr(),
                0,
            )),
        ));
        results.push((
            "open_by_handle_at",
            sys(libc::syscall(libc::SYS_open_by_handle_at, -1, null, 0)),
        ));
        results.push((
            "name_to_handle_at",
            sys(libc::syscall(
                libc::SYS_name_to_handle_at,
                libc::AT_FDCWD,
                c"/".as_ptr(),
                null,
                null,
                0,
            )),
        ));
        results.push((
            "pivot_root",
            sys(libc::syscall(
                libc::SYS_pivot_root,
                c"/tmp".as_ptr(),
                c"/tmp".as_ptr(),
            )),
        ));
    }
    for (_, r) in &results {
        if let Ok(fd) = r {
            close(*fd);
        }
    }
    Ok(all_refused("kernel attack surface", Errno::EPERM, &results))
}

// ------------------------------------------------------------- privilege

fn status_lines() -> Result<Vec<(String, String)>, String> {
    let s = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("read /proc/self/status: {e}"))?;
    Ok(s.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.to_string(), v.trim().to_string()))
        })
        .collect())
}

const CAP_SETS: [&str; 5] = ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"];

/// The five capability sets, and the ones that are not empty.
fn cap_sets(status: &[(String, String)]) -> Result<(String, Vec<String>), String> {
    let mut all = Vec::new();
    let mut held = Vec::new();
    for set in CAP_SETS {
        let v = status
            .iter()
            .find(|(k, _)| k == set)
            .map(|(_, v)| v.clone())
            .ok_or(format!("no {set} in /proc/self/status"))?;
        if u64::from_str_radix(&v, 16).map_err(|_| format!("bad {set} {v}"))? != 0 {
            held.push(format!("{set} {v}"));
        }
        all.push(format!("{set} {v}"));
    }
    Ok((all.join(" "), held))
}

fn caps() -> Res {
    let (all, held) = cap_sets(&status_lines()?)?;
    Ok(if held.is_empty() {
        Blocked(format!("capabilities: {all}"))
    } else {
        Escaped(format!("capabilities: {}", held.join(" ")))
    })
}

/// After an exec of a setuid-root copy of this probe: the ids must still be
/// `uid`, NoNewPrivs 1, and no capability held.
fn ids(uid: &str) -> Res {
    let want: u32 = uid.parse().map_err(|_| format!("bad uid {uid}"))?;
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: getresuid fills three locals.
    unsafe { libc::getresuid(&mut r, &mut e, &mut s) };
    let status = status_lines()?;
    let nnp = status
        .iter()
        .find(|(k, _)| k == "NoNewPrivs")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let (all, held) = cap_sets(&status)?;
    let summary = format!("uid {r} euid {e} suid {s}, NoNewPrivs {nnp}, {all}");
    Ok(
        if r == want && e == want && s == want && nnp == "1" && held.is_empty() {
            Blocked(format!("setuid privilege: {summary}"))
        } else {
            Escaped(format!("setuid privilege: {summary}"))
        },
    )
}

fn exec(path: &str, args: &[&str]) -> Res {
    let prog = cstr(path)?;
    let owned: Vec<CString> = std::iter::once(Ok(prog.clone()))
        .chain(args.iter().map(|a| cstr(a)))
        .collect::<Result<_, _>>()?;
    let mut argv: Vec<*const libc::c_char> = owned.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: argv is a NULL-terminated array of C strings that outlive the
    // call; the environment is inherited.
    unsafe { libc::execv(prog.as_ptr(), argv.as_ptr()) };
    Err(format!("exec {path}: {}", name(last())))
}

// --------------------------------------------------------------- network

fn tcp(port: &str) -> Res {
    let port: u16 = port.parse().map_err(|_| format!("bad port {port}"))?;
    let what = format!("connect to 127.0.0.1:{port}");
    match std::net::TcpStream::connect(("127.0.0.1", port)) {
        Err(e) => Ok(Blocked(format!("{what}: {}", io_name(&e)))),
        Ok(mut s) => {
            let _ = s.write_all(b"antimony-probe\n");
            Ok(Escaped(what))
        }
    }
}

/// A TCP connection to HOST (an address, or a name resolved as the
/// program would) and PORT; once connected, an HTTP request, and the
/// reply's last line on the report.
fn connect(host: &str, port: &str) -> Res {
    use std::net::ToSocketAddrs;
    use std::time::Duration;
    let port: u16 = port.parse().map_err(|_| format!("bad port {port}"))?;
    let what = format!("connect to {host}:{port}");
    let addrs = match (host, port).to_socket_addrs() {
        Ok(a) => a.collect::<Vec<_>>(),
        Err(e) => return Ok(Blocked(format!("resolve {host}: {e}"))),
    };
    let Some(addr) = addrs.first() else {
        return Ok(Blocked(format!("resolve {host}: no address")));
    };
    match std::net::TcpStream::connect_timeout(addr, Duration::from_secs(5)) {
        Err(e) => Ok(Blocked(format!("{what} ({addr}): {}", io_name(&e)))),
        Ok(mut s) => {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(format!("GET / HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes());
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            let last = reply.lines().last().unwrap_or_default().to_string();
            Ok(Escaped(format!("{what} ({addr}): {last}")))
        }
    }
}

/// Listens on TCP PORT (every address), answers one connection with a
/// line, within 20 s.
fn serve(port: &str) -> Res {
    let port: u16 = port.parse().map_err(|_| format!("bad port {port}"))?;
    let l = match std::net::TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => return Ok(Blocked(format!("listen on {port}: {}", io_name(&e)))),
    };
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if let Ok((mut c, from)) = l.accept() {
            let _ = c.set_nonblocking(false);
            let _ = c.write_all(b"served from the sandbox\n");
            // Until the client has read it and closed: ending at once
            // could end the sandbox (and its network) before the line is
            // carried out.
            let _ = c.shutdown(std::net::Shutdown::Write);
            let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let _ = c.read(&mut [0u8; 16]);
            return Ok(Escaped(format!(
                "served a connection on {port} from {from}"
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Ok(Blocked(format!("no connection on {port} within 20 s")))
}

fn bind(port: &str) -> Res {
    let port: u16 = port.parse().map_err(|_| format!("bad port {port}"))?;
    match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Err(e) => Ok(Blocked(format!("bind port {port}: {}", io_name(&e)))),
        Ok(_) => Ok(Escaped(format!("bind port {port}"))),
    }
}

fn unix(abstract_name: &str) -> Res {
    use std::os::linux::net::SocketAddrExt;
    let what = format!("connect to @{abstract_name}");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())
        .map_err(|e| format!("bad name: {e}"))?;
    match std::os::unix::net::UnixStream::connect_addr(&addr) {
        Err(e) => Ok(Blocked(format!("{what}: {}", io_name(&e)))),
        Ok(mut s) => {
            let _ = s.write_all(b"antimony-probe\n");
            Ok(Escaped(what))
        }
    }
}

// ------------------------------------------------------------ environment

/// The variable is not set; the line lists every variable's name.
fn env(var: &str) -> Res {
    let names: Vec<String> = std::env::vars_os()
        .map(|(k, _)| String::from_utf8_lossy(k.as_bytes()).into_owned())
        .collect();
    let list = names.join(",");
    Ok(if std::env::var_os(var).is_some() {
        Escaped(format!("environment: {var} is set (names: {list})"))
    } else {
        Blocked(format!("environment: {var} not set (names: {list})"))
    })
}
