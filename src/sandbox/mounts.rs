//! Builds the sandbox's root after the fork, from the prepared mount list.
//!
//! The sequence (the one bubblewrap proved out):
//! 1. mark every mount a slave, so nothing we do propagates to the host;
//! 2. mount a tmpfs "base" on `/tmp` and `pivot_root` into it, keeping the
//!    host's root at `/oldroot` (so bind sources, even under the host's
//!    `/tmp`, stay reachable) and an empty tmpfs at `/newroot`;
//! 3. carry out each operation under `/newroot`;
//! 4. make `/newroot` read-only, `pivot_root` into `/newroot` and detach
//!    the base with everything in it (`/oldroot`, the host's root,
//!    included): the host's root is then unreachable.
//!
//! Binds use the new mount API: `open_tree(OPEN_TREE_CLONE)` makes a
//! detached copy of the source, `mount_setattr` sets read-only, nosuid and
//! nodev on the whole copy before anything can see it, and `move_mount`
//! puts it in place. Flags are only ever added, so flags the kernel locked
//! on the host's mounts never make a remount fail, and no mount table is
//! ever re-read.

use std::ffi::{CStr, CString};

use super::protocol::Step;
use super::sys::{self, Errno, R};

/// One prepared mount operation. Paths are NUL-terminated bytes, built
/// before the fork; `dest` is mutable so that its parents can be created in
/// place.
#[derive(Debug)]
pub struct MountCmd {
    /// `/newroot/…`, NUL-terminated.
    pub dest: Vec<u8>,
    pub kind: Kind,
}

#[derive(Debug)]
pub enum Kind {
    Bind {
        /// `/oldroot/…`
        source: CString,
        /// `MOUNT_ATTR_*` bits to set on the whole copied tree.
        attr: u64,
        optional: bool,
        /// Refuse any symlink on the way (user-chosen sources).
        no_symlinks: bool,
    },
    Tmpfs {
        data: CString,
    },
    Proc,
    ReadOnly,
    Devpts,
    Symlink {
        target: CString,
    },
    Dir {
        mode: libc::mode_t,
    },
    File {
        contents: Vec<u8>,
        mode: libc::mode_t,
    },
    Overlay {
        data: CString,
        /// Scratch folders on the base tmpfs: root, upper, work.
        scratch: [CString; 3],
    },
    Mask,
    Pin,
}

type Failure = (Step, Errno);

fn at(step: Step) -> impl Fn(Errno) -> Failure {
    move |e| (step, e)
}

fn exist_ok(r: R<()>) -> R<()> {
    match r {
        Err(Errno::EEXIST) => Ok(()),
        other => other,
    }
}

/// Steps 1–2: the base and the empty new root.
pub fn enter_base() -> Result<(), Failure> {
    sys::mount(None, c"/", None, libc::MS_SLAVE | libc::MS_REC, None)
        .map_err(at(Step::Propagation))?;
    sys::mount(
        Some(c"tmpfs"),
        c"/tmp",
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(c"mode=0700"),
    )
    .map_err(at(Step::BaseRoot))?;
    sys::mkdir(c"/tmp/newroot", 0o755).map_err(at(Step::BaseRoot))?;
    sys::mkdir(c"/tmp/oldroot", 0o755).map_err(at(Step::BaseRoot))?;
    sys::pivot_root(c"/tmp", c"/tmp/oldroot").map_err(at(Step::PivotBase))?;
    sys::chdir(c"/").map_err(at(Step::PivotBase))?;
    sys::mount(
        Some(c"tmpfs"),
        c"/newroot",
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(c"mode=0755"),
    )
    .map_err(at(Step::NewRoot))?;
    Ok(())
}

/// Step 4: seal the root and leave the host's behind.
pub fn leave_base() -> Result<(), Failure> {
    sys::mount_setattr(libc::AT_FDCWD, c"/newroot", 0, sys::MOUNT_ATTR_RDONLY)
        .map_err(at(Step::RootReadOnly))?;
    sys::chdir(c"/newroot").map_err(at(Step::PivotRoot))?;
    // pivot_root(".", ".") stacks the base on top of the new root; the
    // detach then drops it together with everything mounted in it, the
    // host's tree at /oldroot included, leaving no path back. One detach
    // rather than two: each waits for an RCU grace period.
    sys::pivot_root(c".", c".").map_err(at(Step::PivotRoot))?;
    sys::umount2(c".", libc::MNT_DETACH).map_err(at(Step::PivotRoot))?;
    sys::chdir(c"/").map_err(at(Step::PivotRoot))?;
    Ok(())
}

/// Runs `make`, which creates `dest`; when that fails with ENOENT (a
/// folder on the way is missing), makes the missing folders (mode 0755)
/// and runs `make` once more. Parents are mounted before their children,
/// so the folder usually exists already: one syscall instead of a `mkdir`
/// per level of the path. Errors are what `mkdir -p` of the parents then
/// `make` would report: a failure while making the parents is tagged
/// `true`.
fn in_place<T>(dest: &mut [u8], make: impl Fn(&CStr) -> R<T>) -> Result<T, (bool, Errno)> {
    match make(sys::cstr(dest)) {
        Err(Errno::ENOENT) => {
            sys::mkdir_parents(dest, 0o755).map_err(|e| (true, e))?;
            make(sys::cstr(dest)).map_err(|e| (false, e))
        }
        r => r.map_err(|e| (false, e)),
    }
}

/// The step to report for an `in_place` failure: making a parent is
/// always the mount point's step.
fn step_of(step: Step) -> impl Fn((bool, Errno)) -> Failure {
    move |(parents, e)| (if parents { Step::MountPoint } else { step }, e)
}

fn mount_point_dir(dest: &mut [u8]) -> Result<(), Failure> {
    in_place(dest, |d| exist_ok(sys::mkdir(d, 0o755))).map_err(step_of(Step::MountPoint))
}

/// An empty regular file to mount a file on: one `mknod` rather than an
/// `open(O_CREAT)` and its `close`.
fn mount_point_file(dest: &mut [u8]) -> Result<(), Failure> {
    in_place(dest, |d| {
        // SAFETY: d is a valid C string; mknod of a regular file needs no
        // privilege and no device number.
        let r = unsafe { libc::mknod(d.as_ptr(), libc::S_IFREG | 0o444, 0) };
        if r < 0 {
            exist_ok(Err(Errno::last()))
        } else {
            Ok(())
        }
    })
    .map_err(step_of(Step::MountPoint))
}

/// Puts a detached copy of `fd`'s mount tree at `dest` with `attr` set.
fn attach_copy(fd: i32, dest: &[u8], attr: u64) -> Result<(), Failure> {
    let tree = sys::open_tree(
        fd,
        c"",
        sys::OPEN_TREE_CLONE
            | libc::O_CLOEXEC as u32
            | libc::AT_EMPTY_PATH as u32
            | sys::AT_RECURSIVE,
    )
    .map_err(at(Step::Mount))?;
    let r = place_copy(tree, dest, attr);
    sys::close(tree);
    r
}

/// Sets `attr` on the whole detached tree `tree`, then moves it to `dest`.
fn place_copy(tree: i32, dest: &[u8], attr: u64) -> Result<(), Failure> {
    sys::mount_setattr(
        tree,
        c"",
        libc::AT_EMPTY_PATH as u32 | sys::AT_RECURSIVE,
        attr,
    )
    .and_then(|()| {
        sys::move_mount(
            tree,
            c"",
            libc::AT_FDCWD,
            sys::cstr(dest),
            sys::MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
    .map_err(at(Step::Mount))
}

/// Errors of finding a path (rather than of mounting what was found).
fn lookup_error(e: Errno) -> bool {
    matches!(
        e,
        Errno::ENOENT | Errno::ENOTDIR | Errno::EACCES | Errno::ELOOP | Errno::ENAMETOOLONG
    )
}

/// Step 3, one operation.
pub fn apply(cmd: &mut MountCmd) -> Result<(), Failure> {
    let dest = &mut cmd.dest;
    match &cmd.kind {
        // A fixed system path (the base layout's /usr, /etc entries, device
        // nodes): cloned straight from its path, following links as an
        // O_PATH open would and, like one, triggering no automount. Two
        // syscalls fewer per bind than the general case below.
        Kind::Bind {
            source,
            attr,
            optional,
            no_symlinks: false,
        } => {
            let tree = match sys::open_tree(
                libc::AT_FDCWD,
                source,
                sys::OPEN_TREE_CLONE
                    | libc::O_CLOEXEC as u32
                    | libc::AT_NO_AUTOMOUNT as u32
                    | sys::AT_RECURSIVE,
            ) {
                Ok(tree) => tree,
                Err(Errno::ENOENT) if *optional => return Ok(()),
                Err(e) if lookup_error(e) => return Err((Step::MountSource, e)),
                Err(e) => return Err((Step::Mount, e)),
            };
            let r = (|| {
                if sys::fstat_is_dir(tree).map_err(at(Step::MountSource))? {
                    mount_point_dir(dest)?;
                } else {
                    mount_point_file(dest)?;
                }
                place_copy(tree, dest, *attr)
            })();
            sys::close(tree);
            r
        }
        // A user-chosen source: opened with no symbolic link anywhere on
        // the way, then copied from that descriptor.
        Kind::Bind {
            source,
            attr,
            optional,
            no_symlinks: true,
        } => {
            let fd = match sys::openat2(
                libc::AT_FDCWD,
                source,
                (libc::O_PATH | libc::O_CLOEXEC) as u64,
                libc::RESOLVE_NO_SYMLINKS,
            ) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if *optional => return Ok(()),
                Err(e) => return Err((Step::MountSource, e)),
            };
            let r = (|| {
                if sys::fstat_is_dir(fd).map_err(at(Step::MountSource))? {
                    mount_point_dir(dest)?;
                } else {
                    mount_point_file(dest)?;
                }
                attach_copy(fd, dest, *attr)
            })();
            sys::close(fd);
            r
        }
        Kind::Tmpfs { data } => {
            mount_point_dir(dest)?;
            sys::mount(
                Some(c"tmpfs"),
                sys::cstr(dest),
                Some(c"tmpfs"),
                libc::MS_NOSUID | libc::MS_NODEV,
                Some(data),
            )
            .map_err(at(Step::Mount))
        }
        Kind::Proc => {
            mount_point_dir(dest)?;
            sys::mount(
                Some(c"proc"),
                sys::cstr(dest),
                Some(c"proc"),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                None,
            )
            .map_err(at(Step::Mount))
        }
        Kind::ReadOnly => {
            let fd = match sys::openat2(
                libc::AT_FDCWD,
                sys::cstr(dest),
                (libc::O_PATH | libc::O_CLOEXEC) as u64,
                libc::RESOLVE_NO_SYMLINKS,
            ) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => return Ok(()),
                Err(e) => return Err((Step::MountSource, e)),
            };
            let r = attach_copy(
                fd,
                dest,
                sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
            );
            sys::close(fd);
            r
        }
        Kind::Devpts => {
            mount_point_dir(dest)?;
            sys::mount(
                Some(c"devpts"),
                sys::cstr(dest),
                Some(c"devpts"),
                libc::MS_NOSUID | libc::MS_NOEXEC,
                Some(c"newinstance,ptmxmode=0666,mode=620"),
            )
            .map_err(at(Step::Mount))
        }
        Kind::Symlink { target } => {
            in_place(dest, |d| exist_ok(sys::symlink(target, d))).map_err(step_of(Step::Mount))
        }
        Kind::Dir { mode } => {
            in_place(dest, |d| exist_ok(sys::mkdir(d, *mode))).map_err(step_of(Step::Mount))
        }
        Kind::File { contents, mode } => {
            let fd = in_place(dest, |d| {
                sys::open(
                    d,
                    libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                    *mode,
                )
            })
            .map_err(step_of(Step::Mount))?;
            let r = sys::write_all(fd, contents);
            sys::close(fd);
            r.map_err(at(Step::Mount))
        }
        Kind::Overlay { data, scratch } => {
            for dir in scratch {
                exist_ok(sys::mkdir(dir, 0o700)).map_err(at(Step::MountPoint))?;
            }
            mount_point_dir(dest)?;
            sys::mount(
                Some(c"overlay"),
                sys::cstr(dest),
                Some(c"overlay"),
                libc::MS_NOSUID | libc::MS_NODEV,
                Some(data),
            )
            .map_err(at(Step::Mount))
        }
        Kind::Pin => {
            // Made if missing (the mask beneath would make it anyway, and
            // it must not be left movable); nothing to pin where it cannot
            // be made (a read-only bind): the sandbox cannot make it either.
            match in_place(dest, |d| exist_ok(sys::mkdir(d, 0o755))) {
                Ok(()) => {}
                Err((_, Errno::EROFS | Errno::ENOENT | Errno::EACCES)) => return Ok(()),
                Err((_, e)) => return Err((Step::MountPoint, e)),
            }
            let fd = match sys::openat2(
                libc::AT_FDCWD,
                sys::cstr(dest),
                (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
                libc::RESOLVE_NO_SYMLINKS,
            ) {
                Ok(fd) => fd,
                Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => return Ok(()),
                Err(e) => return Err((Step::MountSource, e)),
            };
            let r = attach_copy(fd, dest, sys::MOUNT_ATTR_NOSUID);
            sys::close(fd);
            r
        }
        Kind::Mask => {
            // Nothing to hide if the folder neither exists nor can be made
            // (a read-only bind): the sandbox cannot create it either.
            match in_place(dest, |d| exist_ok(sys::mkdir(d, 0o755))) {
                Ok(()) => {}
                Err((_, Errno::EROFS | Errno::ENOENT | Errno::EACCES)) => return Ok(()),
                Err((_, e)) => return Err((Step::MountPoint, e)),
            }
            sys::mount(
                Some(c"tmpfs"),
                sys::cstr(dest),
                Some(c"tmpfs"),
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                Some(c"mode=0555,size=4k"),
            )
            .map_err(at(Step::Mount))
        }
    }
}
