//! Thin wrappers over the syscalls the child makes after the fork.
//!
//! Every function here takes only borrowed, pre-built arguments (`&CStr`,
//! byte slices, plain integers), makes one syscall, and returns the errno as
//! a value. None allocates or takes a lock, so they are safe to call in the
//! forked child (see `spawn`).

use std::ffi::CStr;
use std::os::fd::RawFd;

use libc::{c_int, c_uint, c_ulong, c_void};
pub use nix::errno::Errno;

pub type R<T> = Result<T, Errno>;

fn check(ret: c_int) -> R<c_int> {
    if ret < 0 { Err(Errno::last()) } else { Ok(ret) }
}

fn check_long(ret: libc::c_long) -> R<libc::c_long> {
    if ret < 0 { Err(Errno::last()) } else { Ok(ret) }
}

fn opt(p: Option<&CStr>) -> *const libc::c_char {
    p.map_or(std::ptr::null(), CStr::as_ptr)
}

// Mount API constants from <linux/mount.h> that libc does not export for
// every target.
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const AT_RECURSIVE: c_uint = 0x8000;
pub const OPEN_TREE_CLONE: c_uint = 1;
pub const MOVE_MOUNT_F_EMPTY_PATH: c_uint = 0x4;
pub const MOVE_MOUNT_T_EMPTY_PATH: c_uint = 0x40;

/// `struct mount_attr` (mount_setattr(2)).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub fn mount(
    src: Option<&CStr>,
    dst: &CStr,
    fstype: Option<&CStr>,
    flags: c_ulong,
    data: Option<&CStr>,
) -> R<()> {
    // SAFETY: every pointer is NULL or a NUL-terminated string that outlives
    // the call.
    check(unsafe {
        libc::mount(
            opt(src),
            dst.as_ptr(),
            opt(fstype),
            flags,
            opt(data).cast::<c_void>(),
        )
    })
    .map(drop)
}

pub fn umount2(path: &CStr, flags: c_int) -> R<()> {
    // SAFETY: path is a valid C string.
    check(unsafe { libc::umount2(path.as_ptr(), flags) }).map(drop)
}

pub fn mkdir(path: &CStr, mode: libc::mode_t) -> R<()> {
    // SAFETY: path is a valid C string.
    check(unsafe { libc::mkdir(path.as_ptr(), mode) }).map(drop)
}

/// Views a NUL-terminated buffer as a C string.
/// `buf[at] = byte`, returning what was there; `EINVAL` past the end (no
/// panic after the fork).
pub fn put(buf: &mut [u8], at: usize, byte: u8) -> R<u8> {
    let slot = buf.get_mut(at).ok_or(Errno::EINVAL)?;
    Ok(std::mem::replace(slot, byte))
}

/// The C string at `buf[from..]` (empty past the end).
pub fn cstr_at(buf: &[u8], from: usize) -> &CStr {
    cstr(buf.get(from..).unwrap_or_default())
}

pub fn cstr(buf: &[u8]) -> &CStr {
    CStr::from_bytes_until_nul(buf).unwrap_or(c"")
}

pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> R<()> {
    // SAFETY: both arguments are valid C strings.
    check_long(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) })
        .map(drop)
}

pub fn chdir(path: &CStr) -> R<()> {
    // SAFETY: path is a valid C string.
    check(unsafe { libc::chdir(path.as_ptr()) }).map(drop)
}

pub fn open(path: &CStr, flags: c_int, mode: libc::mode_t) -> R<RawFd> {
    // SAFETY: path is a valid C string.
    check(unsafe { libc::open(path.as_ptr(), flags, mode as c_uint) })
}

/// openat2(2) with `resolve` flags (RESOLVE_NO_SYMLINKS…).
pub fn openat2(dirfd: RawFd, path: &CStr, flags: u64, resolve: u64) -> R<RawFd> {
    // SAFETY: open_how is plain integers; all-zero is valid.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags;
    how.resolve = resolve;
    // SAFETY: `how` is a valid open_how of the size passed; path is a C string.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    })
    .map(|fd| fd as RawFd)
}

pub fn open_tree(dirfd: RawFd, path: &CStr, flags: c_uint) -> R<RawFd> {
    // SAFETY: path is a valid C string.
    check_long(unsafe { libc::syscall(libc::SYS_open_tree, dirfd, path.as_ptr(), flags) })
        .map(|fd| fd as RawFd)
}

pub fn mount_setattr(dirfd: RawFd, path: &CStr, flags: c_uint, set: u64) -> R<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `attr` is a valid struct mount_attr of the size passed.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

pub fn move_mount(from: RawFd, from_path: &CStr, to_dir: RawFd, to: &CStr, flags: c_uint) -> R<()> {
    // SAFETY: both paths are valid C strings.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from,
            from_path.as_ptr(),
            to_dir,
            to.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

pub fn close(fd: RawFd) {
    // SAFETY: closing a descriptor this code opened; errors are irrelevant.
    unsafe { libc::close(fd) };
}

/// Writes all of `buf`, retrying on EINTR and short writes.
pub fn write_all(fd: RawFd, mut buf: &[u8]) -> R<()> {
    while !buf.is_empty() {
        // SAFETY: buf is a valid readable slice.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = Errno::last();
            if e == Errno::EINTR {
                continue;
            }
            return Err(e);
        }
        buf = buf.get(n as usize..).unwrap_or_default();
    }
    Ok(())
}

/// Reads until `buf` is full or end of file; returns the bytes read.
pub fn read_full(fd: RawFd, buf: &mut [u8]) -> R<usize> {
    let mut got = 0;
    while let Some(rest) = buf.get_mut(got..).filter(|r| !r.is_empty()) {
        // SAFETY: the destination is the unfilled, writable tail of buf.
        let n = unsafe { libc::read(fd, rest.as_mut_ptr().cast(), rest.len()) };
        if n < 0 {
            let e = Errno::last();
            if e == Errno::EINTR {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        got += n as usize;
    }
    Ok(got)
}

pub fn write_file(path: &CStr, contents: &[u8]) -> R<()> {
    let fd = open(path, libc::O_WRONLY | libc::O_CLOEXEC, 0)?;
    let r = write_all(fd, contents);
    close(fd);
    r
}

pub fn mkdirat(dir: RawFd, name: &CStr, mode: libc::mode_t) -> R<()> {
    // SAFETY: name is a valid C string.
    check(unsafe { libc::mkdirat(dir, name.as_ptr(), mode) }).map(drop)
}

/// An empty regular file (no privilege or device number needed).
pub fn mknod_file_at(dir: RawFd, name: &CStr, mode: libc::mode_t) -> R<()> {
    // SAFETY: name is a valid C string.
    check(unsafe { libc::mknodat(dir, name.as_ptr(), libc::S_IFREG | mode, 0) }).map(drop)
}

pub fn symlinkat(target: &CStr, dir: RawFd, name: &CStr) -> R<()> {
    // SAFETY: both are valid C strings.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir, name.as_ptr()) }).map(drop)
}

pub fn openat(dir: RawFd, name: &CStr, flags: c_int, mode: libc::mode_t) -> R<RawFd> {
    // SAFETY: name is a valid C string.
    check(unsafe { libc::openat(dir, name.as_ptr(), flags, mode as c_uint) })
}

pub fn fchdir(fd: RawFd) -> R<()> {
    // SAFETY: fchdir with an integer argument.
    check(unsafe { libc::fchdir(fd) }).map(drop)
}

pub fn prctl(option: c_int, arg2: c_ulong) -> R<()> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe { libc::prctl(option, arg2, 0 as c_ulong, 0 as c_ulong, 0 as c_ulong) }).map(drop)
}

pub fn prctl5(option: c_int, a2: c_ulong, a3: c_ulong, a4: c_ulong, a5: c_ulong) -> R<()> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe { libc::prctl(option, a2, a3, a4, a5) }).map(drop)
}

pub fn fstat_is_dir(fd: RawFd) -> R<bool> {
    // SAFETY: an all-zero `stat` is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid, writable stat buffer.
    check(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// clone(2) used like fork(2): the child continues on a copy of the stack.
/// With CLONE_PIDFD, the parent gets a pidfd in `*pidfd`.
pub fn clone(flags: c_ulong, pidfd: Option<&mut c_int>) -> R<libc::pid_t> {
    let ptr = pidfd.map_or(std::ptr::null_mut(), |p| p as *mut c_int);
    // SAFETY: a NULL stack makes clone behave like fork (copy-on-write of
    // the current stack); parent_tid (third argument on x86_64 and aarch64)
    // receives the pidfd when CLONE_PIDFD is set; the other pointers are
    // NULL. The caller guarantees the process is single-threaded and that
    // the child only makes syscalls.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            std::ptr::null_mut::<c_void>(),
            ptr,
            std::ptr::null_mut::<c_void>(),
            0 as c_ulong,
        )
    };
    check_long(ret).map(|p| p as libc::pid_t)
}

/// `clone3(2)`'s arguments (the fields up to `cgroup`, Linux 5.7).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `CLONE_INTO_CGROUP`: the child starts in the cgroup `cgroup` names.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `clone` as a fork (see above) whose child is born in the cgroup of the
/// folder `cgroup` (opened O_RDONLY | O_DIRECTORY), with CLONE_PIDFD and
/// SIGCHLD at its exit: nothing of the child runs outside that cgroup.
pub fn clone_into_cgroup(flags: u64, pidfd: &mut c_int, cgroup: RawFd) -> R<libc::pid_t> {
    let args = CloneArgs {
        flags: flags | libc::CLONE_PIDFD as u64 | CLONE_INTO_CGROUP,
        pidfd: pidfd as *mut c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup as u64,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid clone_args of the size passed; a zero
    // stack makes clone3 behave like fork, as `clone` above (same caller
    // guarantees); `pidfd` receives the new pidfd.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    check_long(ret).map(|p| p as libc::pid_t)
}

pub fn exit(code: c_int) -> ! {
    // SAFETY: _exit never returns and runs no atexit handlers or destructors.
    unsafe { libc::_exit(code) }
}

pub fn close_range(first: c_uint, last: c_uint, flags: c_uint) -> R<()> {
    // SAFETY: close_range takes integers only.
    check_long(unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) }).map(drop)
}
