//! Builds the sandbox's root after the fork, from the prepared mount list.
//!
//! The sequence (the one bubblewrap proved out):
//! 1. mark every mount a slave, so nothing we do propagates to the host;
//! 2. mount a tmpfs "base" on `/tmp` and `pivot_root` into it, keeping the
//!    host's root at `/oldroot` (so bind sources, even under the host's
//!    `/tmp`, stay reachable) and an empty tmpfs at `/newroot`;
//! 3. carry out each operation under `/newroot`, reaching every
//!    destination from a descriptor of `/newroot` with links resolved
//!    inside it (`RESOLVE_IN_ROOT`): a link a sandbox left in a place it
//!    can write never leads a mount, a folder or a file out to the host;
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
use std::os::fd::RawFd;

use super::protocol::Step;
use super::sys::{self, Errno, R};

/// One prepared mount operation. Paths are NUL-terminated bytes, built
/// before the fork; `dest` is mutable so that its folders can be named one
/// at a time in place (a NUL for a `/`, put back after).
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

/// Steps 1–2: the base and the empty new root, tmpfs with these options
/// (mode and size).
pub fn enter_base(base: &CStr, root: &CStr) -> Result<(), Failure> {
    sys::mount(None, c"/", None, libc::MS_SLAVE | libc::MS_REC, None)
        .map_err(at(Step::Propagation))?;
    sys::mount(
        Some(c"tmpfs"),
        c"/tmp",
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(base),
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
        Some(root),
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

/// `/newroot/` as every destination begins.
const NEWROOT: &[u8] = b"/newroot/";

/// The new root, opened once after `enter_base`: every destination is
/// reached from it.
pub fn open_newroot() -> Result<RawFd, Failure> {
    sys::openat2(
        libc::AT_FDCWD,
        c"/newroot",
        (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
        libc::RESOLVE_NO_SYMLINKS,
    )
    .map_err(at(Step::NewRoot))
}

/// A folder inside the new root, symbolic links on the way resolved as if
/// the new root were `/`. A sandbox may leave links in the places it can
/// write (a persistent home, a writable bind) that the next launch mounts
/// beneath; resolved like this, no link leads out of the new root (to
/// `/oldroot`, the host's), as a plain path lookup here would.
fn open_in_root(nr: RawFd, path: &CStr) -> R<RawFd> {
    sys::openat2(
        nr,
        path,
        (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    )
}

/// A destination, split: the folder that holds it (a descriptor, reached
/// inside the new root) and its last component (an offset into the
/// destination's bytes).
struct Place {
    dir: RawFd,
    leaf: usize,
}

impl Place {
    /// Finds `dest`'s folder; with `make`, makes the folders missing on the
    /// way (0755), one component at a time, each inside the one before.
    fn of(nr: RawFd, dest: &mut [u8], make: bool) -> R<Place> {
        let len = dest.iter().position(|&b| b == 0).unwrap_or(dest.len());
        if len <= NEWROOT.len() || !dest.starts_with(NEWROOT) {
            return Err(Errno::EINVAL);
        }
        let slash = dest
            .get(..len)
            .and_then(|d| d.iter().rposition(|&b| b == b'/'))
            .unwrap_or(0);
        let leaf = slash + 1;
        if slash < NEWROOT.len() {
            return open_in_root(nr, c".").map(|dir| Place { dir, leaf });
        }
        sys::put(dest, slash, 0)?;
        let found = match open_in_root(nr, sys::cstr_at(dest, NEWROOT.len())) {
            Err(Errno::ENOENT) if make => make_folders(nr, dest, slash),
            r => r,
        };
        sys::put(dest, slash, b'/')?;
        found.map(|dir| Place { dir, leaf })
    }

    fn name<'a>(&self, dest: &'a [u8]) -> &'a CStr {
        sys::cstr_at(dest, self.leaf)
    }

    /// The destination itself (made by the caller), opened without
    /// following a link there: a link in its place is an error (ELOOP),
    /// never a way elsewhere.
    fn target(&self, dest: &[u8]) -> R<RawFd> {
        sys::openat2(
            self.dir,
            self.name(dest),
            (libc::O_PATH | libc::O_CLOEXEC) as u64,
            libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_BENEATH,
        )
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        sys::close(self.dir);
    }
}

/// Makes the folders of `dest[NEWROOT.len()..end]` (`dest[end]` is a
/// NUL); returns the last one, open.
fn make_folders(nr: RawFd, dest: &mut [u8], end: usize) -> R<RawFd> {
    let mut dir = open_in_root(nr, c".")?;
    let mut start = NEWROOT.len();
    loop {
        let stop = dest
            .get(start..end)
            .and_then(|d| d.iter().position(|&b| b == b'/'))
            .map_or(end, |p| start + p);
        let saved = match sys::put(dest, stop, 0) {
            Ok(saved) => saved,
            Err(e) => {
                sys::close(dir);
                return Err(e);
            }
        };
        // One component, made in the folder found before: nothing to follow.
        let next = exist_ok(sys::mkdirat(dir, sys::cstr_at(dest, start), 0o755))
            .and_then(|()| open_in_root(nr, sys::cstr_at(dest, NEWROOT.len())));
        let _ = sys::put(dest, stop, saved);
        sys::close(dir);
        dir = next?;
        if stop == end {
            return Ok(dir);
        }
        start = stop + 1;
    }
}

/// Makes `dest` with `make` (given its folder and name) and opens it; a
/// failure to find or make its folder is the mount point's step.
fn made(
    nr: RawFd,
    dest: &mut [u8],
    step: Step,
    make: impl Fn(RawFd, &CStr) -> R<()>,
) -> Result<RawFd, Failure> {
    let place = Place::of(nr, dest, true).map_err(at(Step::MountPoint))?;
    make(place.dir, place.name(dest)).map_err(at(step))?;
    place.target(dest).map_err(at(step))
}

fn mount_point_dir(nr: RawFd, dest: &mut [u8]) -> Result<RawFd, Failure> {
    made(nr, dest, Step::MountPoint, |d, n| {
        exist_ok(sys::mkdirat(d, n, 0o755))
    })
}

/// An empty regular file to mount a file on: one `mknod` rather than an
/// `open(O_CREAT)` and its `close`.
fn mount_point_file(nr: RawFd, dest: &mut [u8]) -> Result<RawFd, Failure> {
    made(nr, dest, Step::MountPoint, |d, n| {
        exist_ok(sys::mknod_file_at(d, n, 0o444))
    })
}

/// Puts a detached copy of `fd`'s mount tree on `target` with `attr` set.
fn attach_copy(fd: i32, target: RawFd, attr: u64) -> Result<(), Failure> {
    let tree = sys::open_tree(
        fd,
        c"",
        sys::OPEN_TREE_CLONE
            | libc::O_CLOEXEC as u32
            | libc::AT_EMPTY_PATH as u32
            | sys::AT_RECURSIVE,
    )
    .map_err(at(Step::Mount))?;
    let r = place_copy(tree, target, attr);
    sys::close(tree);
    r
}

/// Sets `attr` on the whole detached tree `tree`, then moves it onto
/// `target` (a descriptor: no path is looked up again).
fn place_copy(tree: i32, target: RawFd, attr: u64) -> Result<(), Failure> {
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
            target,
            c"",
            sys::MOVE_MOUNT_F_EMPTY_PATH | sys::MOVE_MOUNT_T_EMPTY_PATH,
        )
    })
    .map_err(at(Step::Mount))
}

/// Mounts a file system on the folder `target`: from inside it (`.`), so
/// that mount(2) looks no path up.
fn mount_on(
    target: RawFd,
    fstype: &CStr,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> Result<(), Failure> {
    sys::fchdir(target)
        .and_then(|()| sys::mount(Some(fstype), c".", Some(fstype), flags, data))
        .map_err(at(Step::Mount))
}

/// A folder that may stay missing (Pin, Mask): made if it can be; `None`
/// where it cannot (a read-only bind): the sandbox cannot make it either.
fn folder_if_possible(nr: RawFd, dest: &mut [u8]) -> Result<Option<RawFd>, Failure> {
    let place = match Place::of(nr, dest, true) {
        Ok(p) => p,
        Err(Errno::EROFS | Errno::ENOENT | Errno::EACCES | Errno::ENOTDIR) => return Ok(None),
        Err(e) => return Err((Step::MountPoint, e)),
    };
    match exist_ok(sys::mkdirat(place.dir, place.name(dest), 0o755)) {
        Ok(()) => {}
        Err(Errno::EROFS | Errno::EACCES) => return Ok(None),
        Err(e) => return Err((Step::MountPoint, e)),
    }
    match sys::openat2(
        place.dir,
        place.name(dest),
        (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
        libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_BENEATH,
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => Ok(None),
        Err(e) => Err((Step::MountSource, e)),
    }
}

/// Errors of finding a path (rather than of mounting what was found).
fn lookup_error(e: Errno) -> bool {
    matches!(
        e,
        Errno::ENOENT | Errno::ENOTDIR | Errno::EACCES | Errno::ELOOP | Errno::ENAMETOOLONG
    )
}

/// Step 3, one operation; `nr` is the new root (`open_newroot`).
pub fn apply(nr: RawFd, cmd: &mut MountCmd) -> Result<(), Failure> {
    let dest = &mut cmd.dest;
    // Every descriptor opened here is closed before the next operation.
    let with = |fd: RawFd, f: &dyn Fn(RawFd) -> Result<(), Failure>| {
        let r = f(fd);
        sys::close(fd);
        r
    };
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
                let target = if sys::fstat_is_dir(tree).map_err(at(Step::MountSource))? {
                    mount_point_dir(nr, dest)?
                } else {
                    mount_point_file(nr, dest)?
                };
                with(target, &|t| place_copy(tree, t, *attr))
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
                let target = if sys::fstat_is_dir(fd).map_err(at(Step::MountSource))? {
                    mount_point_dir(nr, dest)?
                } else {
                    mount_point_file(nr, dest)?
                };
                with(target, &|t| attach_copy(fd, t, *attr))
            })();
            sys::close(fd);
            r
        }
        Kind::Tmpfs { data } => with(mount_point_dir(nr, dest)?, &|t| {
            mount_on(t, c"tmpfs", libc::MS_NOSUID | libc::MS_NODEV, Some(data))
        }),
        Kind::Proc => with(mount_point_dir(nr, dest)?, &|t| {
            mount_on(
                t,
                c"proc",
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                None,
            )
        }),
        Kind::Devpts => with(mount_point_dir(nr, dest)?, &|t| {
            mount_on(
                t,
                c"devpts",
                libc::MS_NOSUID | libc::MS_NOEXEC,
                Some(c"newinstance,ptmxmode=0666,mode=620"),
            )
        }),
        // What is already there, made read-only (where it is missing,
        // nothing to do).
        Kind::ReadOnly => {
            let place = match Place::of(nr, dest, false) {
                Ok(p) => p,
                Err(Errno::ENOENT) => return Ok(()),
                Err(e) => return Err((Step::MountSource, e)),
            };
            let fd = match place.target(dest) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => return Ok(()),
                Err(e) => return Err((Step::MountSource, e)),
            };
            with(fd, &|fd| {
                attach_copy(
                    fd,
                    fd,
                    sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
                )
            })
        }
        Kind::Symlink { target } => {
            let place = Place::of(nr, dest, true).map_err(at(Step::MountPoint))?;
            exist_ok(sys::symlinkat(target, place.dir, place.name(dest))).map_err(at(Step::Mount))
        }
        Kind::Dir { mode } => {
            let place = Place::of(nr, dest, true).map_err(at(Step::MountPoint))?;
            exist_ok(sys::mkdirat(place.dir, place.name(dest), *mode)).map_err(at(Step::Mount))
        }
        Kind::File { contents, mode } => {
            let place = Place::of(nr, dest, true).map_err(at(Step::MountPoint))?;
            let fd = sys::openat(
                place.dir,
                place.name(dest),
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                *mode,
            )
            .map_err(at(Step::Mount))?;
            with(fd, &|fd| {
                sys::write_all(fd, contents).map_err(at(Step::Mount))
            })
        }
        Kind::Overlay { data, scratch } => {
            for dir in scratch {
                exist_ok(sys::mkdir(dir, 0o700)).map_err(at(Step::MountPoint))?;
            }
            with(mount_point_dir(nr, dest)?, &|t| {
                mount_on(t, c"overlay", libc::MS_NOSUID | libc::MS_NODEV, Some(data))
            })
        }
        Kind::Pin => match folder_if_possible(nr, dest)? {
            // Made if missing (the mask beneath would make it anyway, and
            // it must not be left movable); nothing to pin where it cannot
            // be made (a read-only bind): the sandbox cannot make it either.
            Some(fd) => with(fd, &|fd| attach_copy(fd, fd, sys::MOUNT_ATTR_NOSUID)),
            None => Ok(()),
        },
        Kind::Mask => match folder_if_possible(nr, dest)? {
            // Nothing to hide if the folder neither exists nor can be made.
            Some(fd) => with(fd, &|t| {
                mount_on(
                    t,
                    c"tmpfs",
                    libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    Some(c"mode=0555,size=4k"),
                )
            }),
            None => Ok(()),
        },
    }
}
