//! Files forwarded into a sandbox that runs already (a later `antimony run`
//! of a `single_instance` profile): each host file or folder is bound
//! under the sandbox's forward area (`plan::FORWARD_AREA`), in a folder of
//! its own.
//!
//! The mounts are made by a child of the joining antimony, on the host, as
//! the instance's user, never by anything inside: the sandbox asks for
//! nothing and is handed no descriptor. The child
//! 1. joins the sandbox's user namespace (its owner has every capability
//!    there), and makes a mount namespace of its own in it, a copy of the
//!    host's: there it may copy the host's files with `open_tree`, which
//!    works only on mounts of the caller's own mount namespace;
//! 2. makes each copy read-only (unless writable), nosuid and nodev before
//!    anyone can see it;
//! 3. joins the sandbox's mount namespace, makes a new folder in the forward
//!    area (which Landlock's rule on that tmpfs covers, so the sandbox may
//!    use what appears there later; a bind at any other place would fall
//!    outside the rules its Landlock domain was given at start), and moves
//!    each copy onto a mount point there, named by descriptor: whatever the
//!    sandbox renamed or linked meanwhile, a mount lands only in the
//!    sandbox's own tree.
//!
//! The child makes syscalls only (its arguments are built before the fork)
//! and reports a failure as (item, step, errno) on a pipe.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::sys::{self, Errno};

/// One file or folder to forward.
#[derive(Debug)]
pub struct Item {
    /// On the host, links resolved.
    pub source: CString,
    /// The folder made for it in the forward area, and its name there.
    pub folder_name: CString,
    pub name: CString,
    pub is_dir: bool,
    pub writable: bool,
}

/// The step of a forward that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardStep {
    JoinUserNamespace,
    OwnMountNamespace,
    CopyFile,
    SetAttributes,
    JoinMountNamespace,
    OpenArea,
    MakeFolder,
    MakeMountPoint,
    Move,
    Fork,
}

impl std::fmt::Display for ForwardStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ForwardStep::JoinUserNamespace => "join its user namespace",
            ForwardStep::OwnMountNamespace => "make a mount namespace",
            ForwardStep::CopyFile => "copy the file",
            ForwardStep::SetAttributes => "make the copy read-only, nosuid, nodev",
            ForwardStep::JoinMountNamespace => "join its mount namespace",
            ForwardStep::OpenArea => "open its forward area (did it start without single_instance?)",
            ForwardStep::MakeFolder => "make a folder in its forward area",
            ForwardStep::MakeMountPoint => "make a mount point",
            ForwardStep::Move => "mount the copy",
            ForwardStep::Fork => "start a process",
        })
    }
}

const STEPS: [ForwardStep; 10] = [
    ForwardStep::JoinUserNamespace,
    ForwardStep::OwnMountNamespace,
    ForwardStep::CopyFile,
    ForwardStep::SetAttributes,
    ForwardStep::JoinMountNamespace,
    ForwardStep::OpenArea,
    ForwardStep::MakeFolder,
    ForwardStep::MakeMountPoint,
    ForwardStep::Move,
    ForwardStep::Fork,
];

/// A forward that failed: which item (none for the namespace steps), at
/// which step, with the kernel's errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub item: Option<usize>,
    pub step: ForwardStep,
    pub errno: Errno,
}

/// The most files one run forwards into a running sandbox.
pub const MAX_ITEMS: usize = 32;

/// Forwards `items` into the sandbox whose process `pidfd` refers to,
/// under `area` (inside it). Blocks until the mounts are made.
pub fn into_running(pidfd: RawFd, area: &Path, items: &[Item]) -> Result<(), Failure> {
    let fail = |item, step, errno| Failure { item, step, errno };
    if items.len() > MAX_ITEMS {
        return Err(fail(None, ForwardStep::Fork, Errno::E2BIG));
    }
    let area = CString::new(area.as_os_str().as_bytes())
        .map_err(|_| fail(None, ForwardStep::OpenArea, Errno::EINVAL))?;
    let mut pipe = [0; 2];
    // SAFETY: pipe2 fills the two-element array.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(fail(None, ForwardStep::Fork, Errno::last()));
    }
    // SAFETY: pipe2 just made these descriptors; each is owned once.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(pipe[0]), OwnedFd::from_raw_fd(pipe[1])) };
    let mut trees = [-1; MAX_ITEMS];
    // SAFETY: fork in a single-threaded antimony (the joining `run` starts
    // no thread); the child makes syscalls only, with arguments built above.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(fail(None, ForwardStep::Fork, Errno::last()));
    }
    if pid == 0 {
        let code = match child(pidfd, &area, items, &mut trees) {
            Ok(()) => 0,
            Err((item, step, errno)) => {
                let step = STEPS.iter().position(|s| *s == step).unwrap_or(0) as u32;
                let mut msg = [0u8; 12];
                let words = [item.map_or(u32::MAX, |i| i as u32), step, errno as u32];
                for (chunk, w) in msg.chunks_exact_mut(4).zip(words) {
                    chunk.copy_from_slice(&w.to_ne_bytes());
                }
                let _ = sys::write_all(wr.as_raw_fd(), &msg);
                1
            }
        };
        sys::exit(code)
    }
    drop(wr);
    let mut msg = [0u8; 12];
    let n = sys::read_full(rd.as_raw_fd(), &mut msg).unwrap_or(0);
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r >= 0 || Errno::last() != Errno::EINTR {
            break;
        }
    }
    if n == msg.len() {
        let word = |i: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(msg.get(i * 4..i * 4 + 4).unwrap_or(&[0; 4]));
            u32::from_ne_bytes(w)
        };
        let item = (word(0) != u32::MAX).then_some(word(0) as usize);
        let step = STEPS
            .get(word(1) as usize)
            .copied()
            .unwrap_or(ForwardStep::Fork);
        return Err(fail(item, step, Errno::from_raw(word(2) as i32)));
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(fail(None, ForwardStep::Fork, Errno::ECHILD));
    }
    Ok(())
}

type ChildError = (Option<usize>, ForwardStep, Errno);

fn child(
    pidfd: RawFd,
    area: &CStr,
    items: &[Item],
    trees: &mut [RawFd; MAX_ITEMS],
) -> Result<(), ChildError> {
    let ns = |step| move |e| (None, step, e);
    // Every capability in the sandbox's user namespace, soon: nothing in
    // the sandbox may ptrace or read this process meanwhile (Landlock's
    // domain and the seccomp filter already keep the sandbox from it, and
    // it is in no PID namespace the sandbox sees; this is one more wall).
    sys::prctl(libc::PR_SET_DUMPABLE, 0).map_err(ns(ForwardStep::JoinUserNamespace))?;
    setns(pidfd, libc::CLONE_NEWUSER).map_err(ns(ForwardStep::JoinUserNamespace))?;
    // SAFETY: unshare with a flag; no pointers.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } < 0 {
        return Err((None, ForwardStep::OwnMountNamespace, Errno::last()));
    }
    for (i, (item, tree)) in items.iter().zip(trees.iter_mut()).enumerate() {
        let at = |step| move |e| (Some(i), step, e);
        let flags = sys::OPEN_TREE_CLONE
            | libc::O_CLOEXEC as u32
            | libc::AT_NO_AUTOMOUNT as u32
            | libc::AT_SYMLINK_NOFOLLOW as u32
            | if item.is_dir { sys::AT_RECURSIVE } else { 0 };
        *tree = sys::open_tree(libc::AT_FDCWD, &item.source, flags)
            .map_err(at(ForwardStep::CopyFile))?;
        let mut attr = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
        if !item.writable {
            attr |= sys::MOUNT_ATTR_RDONLY;
        }
        sys::mount_setattr(
            *tree,
            c"",
            libc::AT_EMPTY_PATH as u32 | sys::AT_RECURSIVE,
            attr,
        )
        .map_err(at(ForwardStep::SetAttributes))?;
    }
    setns(pidfd, libc::CLONE_NEWNS).map_err(ns(ForwardStep::JoinMountNamespace))?;
    // No link anywhere on the way: the sandbox could have left one.
    let dir = sys::openat2(
        libc::AT_FDCWD,
        area,
        (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
        libc::RESOLVE_NO_SYMLINKS,
    )
    .map_err(ns(ForwardStep::OpenArea))?;
    for (i, (item, &tree)) in items.iter().zip(trees.iter()).enumerate() {
        let at = |step| move |e| (Some(i), step, e);
        sys::mkdirat(dir, &item.folder_name, 0o755).map_err(at(ForwardStep::MakeFolder))?;
        let own = sys::openat(
            dir,
            &item.folder_name,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0,
        )
        .map_err(at(ForwardStep::MakeFolder))?;
        if item.is_dir {
            sys::mkdirat(own, &item.name, 0o755).map_err(at(ForwardStep::MakeMountPoint))?;
        } else {
            sys::mknod_file_at(own, &item.name, 0o644).map_err(at(ForwardStep::MakeMountPoint))?;
        }
        let point = sys::openat(
            own,
            &item.name,
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0,
        )
        .map_err(at(ForwardStep::MakeMountPoint))?;
        sys::move_mount(
            tree,
            c"",
            point,
            c"",
            sys::MOVE_MOUNT_F_EMPTY_PATH | sys::MOVE_MOUNT_T_EMPTY_PATH,
        )
        .map_err(at(ForwardStep::Move))?;
    }
    Ok(())
}

fn setns(fd: RawFd, kind: libc::c_int) -> Result<(), Errno> {
    // SAFETY: setns with a descriptor and a flag.
    if unsafe { libc::setns(fd, kind) } < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// The folder names an instance's forwards get: `TAG-1`, `TAG-2`… (`tag`:
/// the joining run's own id, so that two runs never pick the same).
pub fn folder_names(tag: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{tag}-{i}")).collect()
}

/// Where item `name` of folder `folder` is seen inside.
pub fn inside_path(area: &Path, folder: &str, name: &Path) -> PathBuf {
    area.join(folder).join(name)
}
