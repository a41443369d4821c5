//! From the plan to what the child needs after the fork: every path a
//! NUL-terminated buffer, every descriptor open, argv and envp as pointer
//! arrays, the Landlock ruleset created, the seccomp programs compiled.
//! The child then makes syscalls only.

use std::collections::HashSet;
use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use super::SandboxError;
use super::landlock;
use super::mounts::{Kind, MountCmd};
use super::sys;
use crate::plan::{Op, Origin, Plan};
use crate::profile::BindMode;

#[derive(Debug)]
pub struct Prepared {
    pub clone_flags: libc::c_int,
    pub new_net: bool,
    /// The isolated network's rules, as netlink requests (`namespaces`).
    pub net_rules: Vec<Vec<u8>>,
    /// Send antimony the network namespace (for pasta) before init
    /// becomes non-dumpable, after which antimony could not open it.
    pub send_netns: bool,
    pub uid_map: Vec<u8>,
    pub gid_map: Vec<u8>,
    pub mounts: Vec<MountCmd>,
    /// The options of the base tmpfs init builds the root on, and of the
    /// root itself (their sizes).
    pub base_options: CString,
    pub root_options: CString,
    pub limits: super::limits::Prepared,
    /// The sandbox's cgroup, where the plan bounds memory or CPU: init is
    /// born in it. Moved to the `Sandbox`, which removes it at the end.
    pub cgroup: Option<super::limits::Cgroup>,
    pub landlock: Option<landlock::Prepared>,
    pub seccomp: Vec<Vec<libc::sock_filter>>,
    /// A recording run's notifying filter (empty: none), installed by the
    /// program's process just before it executes the program.
    pub notify: Vec<libc::sock_filter>,
    pub caps: Vec<u8>,
    pub program: CString,
    /// Kept alive for the pointer arrays below.
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    pub argv: Vec<*const libc::c_char>,
    pub envp: Vec<*const libc::c_char>,
    pub cwd: CString,
    /// `cwd` is the profile's `dir`: no falling back to the home.
    pub cwd_strict: bool,
    /// Init waits, set up, for antimony's go before executing the program.
    pub wait_for_go: bool,
    /// The program's stdin, stdout and stderr instead of antimony's
    /// (the D-Bus proxy's: its readiness pipe is its stdout). Init
    /// moves them to 0, 1 and 2 first thing, so it holds them too.
    pub stdio: Option<[OwnedFd; 3]>,
    pub home: CString,
    pub umask: libc::mode_t,
    /// A pidfd of antimony itself: the child checks it once, after asking
    /// to die with its parent, to close the race where antimony died first.
    pub parent: OwnedFd,
    /// Init's buffer for requests from antimony, allocated before the fork.
    pub request: Vec<u8>,
    /// Init's argv/envp pointer array for commands run inside.
    pub request_ptrs: Vec<*const libc::c_char>,
}

fn bytes(prefix: &str, path: &Path) -> Vec<u8> {
    let mut v = Vec::with_capacity(prefix.len() + path.as_os_str().len() + 1);
    v.extend_from_slice(prefix.as_bytes());
    v.extend_from_slice(path.as_os_str().as_bytes());
    v.push(0);
    v
}

fn cstring(s: impl AsRef<OsStr>) -> Result<CString, SandboxError> {
    CString::new(s.as_ref().as_bytes())
        .map_err(|_| SandboxError::Nul(s.as_ref().to_string_lossy().into()))
}

/// A tmpfs's mount options: its mode and, when the plan gives one, its
/// size (`size=0` would mean no limit to the kernel).
fn tmpfs_options(mode: u32, size: u64) -> String {
    if size == 0 {
        format!("mode={mode:04o}")
    } else {
        format!("mode={mode:04o},size={size}")
    }
}

/// Escapes `\`, `,` and `:` for overlayfs options.
fn overlay_escape(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        if matches!(c, '\\' | ',' | ':') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Resolves a user-chosen host path for binding. A symlink on the way is
/// followed only if neither the user nor any of their sandboxes could have
/// planted it (CVE-2024-42472: a sandbox swapped a persistent folder for a
/// link to elsewhere between two runs): the link and its folder belong to
/// root, the folder is not writable by group or others, and it lies
/// neither in the user's home nor in any of `writable` — the places this
/// run lets a sandbox write, where even root's sandboxes (uid 0, owning
/// what they create) could have made it. A missing part ends the walk; the
/// mount then reports it.
///
/// `real` remembers the places already found not to be symbolic links, so
/// that binds sharing a prefix (a thousand folders of one project) look at
/// each part once per launch rather than once per bind. The check stays a
/// check before the fork: the mount itself opens the source with
/// `RESOLVE_NO_SYMLINKS` (the overlay's lower folder, which the kernel
/// looks up by name at mount time, is antimony's own, which no sandbox
/// can reach).
fn resolve_source_with(
    path: &Path,
    writable: &[PathBuf],
    real: &mut HashSet<PathBuf>,
) -> Result<PathBuf, SandboxError> {
    let mut out = PathBuf::from("/");
    let mut pending: Vec<PathBuf> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            // Taken where it stands, as the kernel would (not dropped).
            Component::ParentDir => Some(PathBuf::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        if part.as_os_str() == ".." {
            out.pop();
            continue;
        }
        let next = out.join(&part);
        if real.contains(&next) {
            out = next;
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&next) else {
            let mut rest = next;
            while let Some(p) = pending.pop() {
                rest.push(p);
            }
            return Ok(rest);
        };
        if !meta.file_type().is_symlink() {
            real.insert(next.clone());
            out = next;
            continue;
        }
        let target = std::fs::read_link(&next).map_err(|e| SandboxError::Setup {
            what: format!("read the link {}", next.display()),
            errno: sys::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        })?;
        let dir = std::fs::metadata(&out).ok();
        let trusted = meta.uid() == 0
            && dir.is_some_and(|d| d.uid() == 0 && d.mode() & 0o022 == 0)
            && !writable.iter().any(|w| next.starts_with(w));
        if !trusted {
            return Err(SandboxError::Symlink {
                path: path.to_path_buf(),
                link: next,
                target,
            });
        }
        hops += 1;
        if hops > 40 {
            return Err(SandboxError::SymlinkLoop(path.to_path_buf()));
        }
        if target.is_absolute() {
            out = PathBuf::from("/");
        }
        for c in target.components().rev() {
            match c {
                Component::Normal(n) => pending.push(PathBuf::from(n)),
                Component::ParentDir => pending.push(PathBuf::from("..")),
                _ => {}
            }
        }
    }
    Ok(out)
}

fn pidfd_self() -> Result<OwnedFd, SandboxError> {
    // SAFETY: pidfd_open(getpid(), 0) has no pointer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
    if fd < 0 {
        return Err(SandboxError::Syscall {
            what: "pidfd_open",
            errno: sys::Errno::last(),
        });
    }
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Builds everything the child needs.
pub fn prepare(plan: &Plan) -> Result<Prepared, SandboxError> {
    let mut mounts = Vec::with_capacity(plan.mounts.len());
    let mut real = HashSet::new();
    // Where a sandbox of this run may write: the home (the host's, which
    // every sandbox's home is named after) and the writable binds.
    // Both as written and as resolved: a link is trusted only where no
    // sandbox could have made it, under whichever name.
    let host = &crate::host::RealHost;
    let mut writable = crate::plan::mounts::writable_sources(host, &plan.mounts);
    writable.push(plan.home.clone());
    writable.push(crate::plan::mounts::real_path(host, &plan.home));
    let mut overlays = 0;
    for m in &plan.mounts {
        let dest = bytes("/newroot", &m.dest);
        let kind = match &m.op {
            Op::Bind {
                source,
                mode,
                optional,
            } => {
                // The base layout names fixed system paths; anything a
                // profile or the command line names goes through the
                // symlink policy and is then opened with no symlinks at all.
                let user_chosen = m.origin != Origin::Base;
                let source = if user_chosen {
                    resolve_source_with(source, &writable, &mut real)?
                } else {
                    source.clone()
                };
                let attr = match mode {
                    BindMode::Ro => {
                        sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV
                    }
                    BindMode::Rw => sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
                    BindMode::Dev => sys::MOUNT_ATTR_NOSUID,
                };
                let mut under_old = PathBuf::from("/oldroot");
                under_old.push(source.strip_prefix("/").unwrap_or(&source));
                Kind::Bind {
                    source: cstring(&under_old)?,
                    attr,
                    optional: *optional,
                    no_symlinks: user_chosen,
                }
            }
            Op::Tmpfs { mode, size } => Kind::Tmpfs {
                data: cstring(tmpfs_options(*mode, *size))?,
            },
            Op::Proc => Kind::Proc,
            Op::ReadOnly => Kind::ReadOnly,
            Op::Devpts => Kind::Devpts,
            Op::Symlink { target } => Kind::Symlink {
                target: cstring(target)?,
            },
            Op::Dir { mode } => Kind::Dir { mode: *mode },
            Op::File { contents, mode } => Kind::File {
                contents: contents.clone(),
                mode: *mode,
            },
            Op::Overlay { lower } => {
                let lower = resolve_source_with(lower, &writable, &mut real)?;
                overlays += 1;
                let root = format!("/antimony-overlay-{overlays}");
                Kind::Overlay {
                    data: cstring(format!(
                        "lowerdir=/oldroot{},upperdir={root}/upper,workdir={root}/work",
                        overlay_escape(&lower)
                    ))?,
                    scratch: [
                        cstring(&root)?,
                        cstring(format!("{root}/upper"))?,
                        cstring(format!("{root}/work"))?,
                    ],
                }
            }
            Op::Mask => Kind::Mask,
            Op::Pin => Kind::Pin,
        };
        mounts.push(MountCmd { dest, kind });
    }

    let landlock = landlock::prepare(&plan.landlock).map_err(SandboxError::Landlock)?;
    let argv: Vec<CString> = plan.argv.iter().map(cstring).collect::<Result<_, _>>()?;
    let envp: Vec<CString> = plan
        .env
        .iter()
        .map(|(k, v)| {
            let mut kv = k.clone();
            kv.push("=");
            kv.push(v);
            cstring(kv)
        })
        .collect::<Result<_, _>>()?;
    let ptrs = |v: &[CString]| -> Vec<*const libc::c_char> {
        v.iter()
            .map(|c| c.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    };
    // SAFETY: umask(2) cannot fail; the value is put back at once.
    let umask = unsafe {
        let old = libc::umask(0o022);
        libc::umask(old);
        old
    };
    Ok(Prepared {
        clone_flags: plan.namespaces.clone_flags(),
        new_net: plan.namespaces.net,
        net_rules: plan
            .network
            .isolated
            .as_ref()
            .map(|n| super::namespaces::rule_messages(&n.rules))
            .unwrap_or_default(),
        send_netns: plan.network.isolated.is_some(),
        uid_map: format!("{0} {0} 1\n", plan.uid).into_bytes(),
        gid_map: format!("{0} {0} 1\n", plan.gid).into_bytes(),
        mounts,
        base_options: cstring(tmpfs_options(0o700, plan.limits.base_size))?,
        root_options: cstring(tmpfs_options(0o755, plan.limits.root_size))?,
        limits: super::limits::prepare(&plan.limits),
        cgroup: super::limits::Cgroup::create(&plan.limits)?,
        landlock,
        seccomp: plan
            .seccomp
            .as_ref()
            .map(|s| s.programs.clone())
            .unwrap_or_default(),
        notify: plan
            .record
            .as_ref()
            .map(|r| r.program.clone())
            .unwrap_or_default(),
        caps: super::caps::supported(),
        program: cstring(&plan.program)?,
        argv: ptrs(&argv),
        envp: ptrs(&envp),
        _argv: argv,
        _envp: envp,
        cwd: cstring(&plan.cwd)?,
        cwd_strict: plan.cwd_explicit,
        wait_for_go: false,
        stdio: None,
        home: cstring(&plan.home)?,
        umask,
        parent: pidfd_self()?,
        request: vec![0; super::protocol::MAX_REQUEST],
        request_ptrs: vec![std::ptr::null(); super::protocol::MAX_STRINGS + 2],
    })
}

impl Prepared {
    pub fn parent_fd(&self) -> i32 {
        self.parent.as_raw_fd()
    }
}
