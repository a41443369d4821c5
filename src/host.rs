//! Facts about the host that the loader and the planner need: who runs
//! antimony, where their home and XDG folders are, and the environment the
//! sandbox may copy values from.
//!
//! Everything is read once, up front, so that the rest of the code is pure
//! with respect to the process environment (and tests can build a `Host` by
//! hand). What the planner needs to know of the host's files it asks a
//! `view::HostView` (the real host: `RealHost`), so that a plan is a
//! function of the profile, the options, the host and the instance id.
//!
//! A leaf: it uses nothing else of antimony's.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

pub mod view;

pub use view::{HostView, RealHost};

/// The system's configuration: profiles, reusable hooks and drop-ins.
pub const SYSTEM_CONFIG: &str = "/etc/antimony";

/// The identity a hook runs as when antimony runs as root on someone's behalf
/// (`sudo`, `pkexec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnBehalfOf {
    pub uid: u32,
    pub gid: u32,
}

/// A folder antimony keeps its running instances' records and sockets in
/// that is not a private folder of the user's: another user may have made
/// it first (`/tmp/antimony-UID`), to read or forge what antimony puts
/// there. It is not used.
#[derive(Debug, thiserror::Error)]
#[error(
    "{} {why}: another user could read or forge what antimony keeps there (instance records, control and D-Bus sockets), so antimony does not use it; remove it, or set XDG_RUNTIME_DIR to a private folder of yours",
    path.display()
)]
pub struct NotPrivate {
    pub path: PathBuf,
    pub why: String,
}

impl From<NotPrivate> for std::io::Error {
    fn from(e: NotPrivate) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::PermissionDenied, e)
    }
}

impl NotPrivate {
    /// The `NotPrivate` an I/O error carries, if it is one.
    pub fn of(e: &std::io::Error) -> Option<&NotPrivate> {
        e.get_ref()?.downcast_ref::<NotPrivate>()
    }
}

#[derive(Debug, Clone)]
pub struct Host {
    pub uid: u32,
    pub gid: u32,
    /// The user's login name, from `/etc/passwd`, else `$USER`, else the uid.
    pub user: String,
    pub home: PathBuf,
    pub config_home: PathBuf,
    pub data_home: PathBuf,
    pub cache_home: PathBuf,
    pub state_home: PathBuf,
    pub runtime_dir: Option<PathBuf>,
    /// antimony's folder for running instances (records, control sockets,
    /// D-Bus proxies' sockets): `$XDG_RUNTIME_DIR/antimony`, else
    /// `$TMPDIR/antimony-UID` (TMPDIR read once, here, so that `run` and
    /// `ps` agree).
    pub runtime_base: PathBuf,
    pub cwd: Option<PathBuf>,
    /// antimony's own environment, as it was at start.
    pub env: BTreeMap<OsString, OsString>,
    /// Set when running as root for another user (`SUDO_UID`/`SUDO_GID`, `PKEXEC_UID`).
    pub on_behalf_of: Option<OnBehalfOf>,
}

impl Host {
    /// Reads the host facts from the process environment and credentials.
    pub fn from_process() -> Host {
        let env: BTreeMap<OsString, OsString> = std::env::vars_os().collect();
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        let pw = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten();
        let home = env
            .get(OsStr::new("HOME"))
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or_else(|| pw.as_ref().map(|p| p.dir.clone()))
            .unwrap_or_else(|| PathBuf::from("/"));
        let user = pw
            .as_ref()
            .map(|p| p.name.clone())
            .or_else(|| {
                env.get(OsStr::new("USER"))
                    .map(|u| u.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| uid.to_string());
        let xdg = |var: &str, default: &str| -> PathBuf {
            env.get(OsStr::new(var))
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .unwrap_or_else(|| home.join(default))
        };
        let config_home = xdg("XDG_CONFIG_HOME", ".config");
        let data_home = xdg("XDG_DATA_HOME", ".local/share");
        let cache_home = xdg("XDG_CACHE_HOME", ".cache");
        let state_home = xdg("XDG_STATE_HOME", ".local/state");
        let runtime_dir = env
            .get(OsStr::new("XDG_RUNTIME_DIR"))
            .map(PathBuf::from)
            .filter(|p| p.is_absolute());
        let on_behalf_of = if uid == 0 { on_behalf_of(&env) } else { None };
        let runtime_base = match &runtime_dir {
            Some(r) => r.join("antimony"),
            None => std::env::temp_dir().join(format!("antimony-{uid}")),
        };
        Host {
            uid,
            gid,
            user,
            home,
            config_home,
            data_home,
            cache_home,
            state_home,
            runtime_dir,
            runtime_base,
            cwd: std::env::current_dir().ok(),
            env,
            on_behalf_of,
        }
    }

    /// `runtime_base/NAME`, made if missing, and checked: it and
    /// `runtime_base` must be folders (not links) of this user that nobody
    /// else may enter. In `/tmp`, another user could have made them first:
    /// then what they hold (records, sockets a sandbox is given) could be
    /// anything, so they are not used (`NotPrivate`). Each is checked on
    /// the descriptor it is opened as (`O_NOFOLLOW`, then `fstat`), and
    /// `NAME` is made and opened relative to `runtime_base`'s descriptor,
    /// so nothing can be swapped between the check and the use.
    pub fn runtime_folder(&self, name: &str) -> std::io::Result<PathBuf> {
        use std::os::unix::fs::DirBuilderExt;
        // Makes the folder (and, in a runtime folder, its parents) if
        // missing; says nothing about one that exists, checked next. (A
        // dangling link there fails here, and is named as a link next.)
        let made = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.runtime_base);
        let base = self
            .open_private(None, &self.runtime_base)
            .map_err(|e| match made {
                Err(m) if NotPrivate::of(&e).is_none() => m,
                _ => e,
            })?;
        match nix::sys::stat::mkdirat(&base, name, nix::sys::stat::Mode::from_bits_truncate(0o700))
        {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        let dir = self.runtime_base.join(name);
        self.open_private(Some(&base), &dir)?;
        Ok(dir)
    }

    /// Checks `dir` (in `runtime_base`) as `runtime_folder` does, making
    /// nothing (NotFound when something on the way is missing).
    pub fn check_runtime_folder(&self, dir: &Path) -> std::io::Result<()> {
        let mut at = self.open_private(None, &self.runtime_base)?;
        let rest = dir.strip_prefix(&self.runtime_base).map_err(|_| {
            std::io::Error::other(format!(
                "{} is not in {}",
                dir.display(),
                self.runtime_base.display()
            ))
        })?;
        let mut path = self.runtime_base.clone();
        for part in rest.components() {
            path.push(part);
            at = self.open_private(Some(&at), &path)?;
        }
        Ok(())
    }

    /// Opens `path` (relative to `at`: its last component) as a folder,
    /// without following a link, and checks on the descriptor that it is
    /// this user's and nobody else's. `O_PATH`: a folder of another user
    /// that this one may not read is still opened, and named as such.
    fn open_private(
        &self,
        at: Option<&std::os::fd::OwnedFd>,
        path: &Path,
    ) -> std::io::Result<std::os::fd::OwnedFd> {
        use nix::fcntl::OFlag;
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mode = nix::sys::stat::Mode::empty();
        let opened = match at {
            Some(dir) => nix::fcntl::openat(dir, path.file_name().unwrap_or_default(), flags, mode),
            None => nix::fcntl::open(path, flags, mode),
        };
        let not_private = |why: String| NotPrivate {
            path: path.to_path_buf(),
            why,
        };
        let fd = match opened {
            Ok(fd) => fd,
            // A link (O_NOFOLLOW) or anything but a folder (O_DIRECTORY):
            // which one, only for the message.
            Err(nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR) => {
                let link = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_symlink());
                let why = if link {
                    "is a symbolic link"
                } else {
                    "is not a folder"
                };
                return Err(not_private(why.into()).into());
            }
            Err(e) => return Err(e.into()),
        };
        let st = nix::sys::stat::fstat(&fd)?;
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(not_private("is not a folder".into()).into());
        }
        if st.st_uid != self.uid {
            return Err(not_private(format!(
                "belongs to uid {}, not to uid {}",
                st.st_uid, self.uid
            ))
            .into());
        }
        // Writable by others: what is inside may be theirs. Only readable
        // (an older umask, a folder made by hand): nobody else could have
        // put anything there, so it is made private (the user owns it).
        if st.st_mode & 0o022 != 0 {
            return Err(not_private(format!(
                "is open to other users (mode {:04o})",
                st.st_mode & 0o7777
            ))
            .into());
        }
        if st.st_mode & 0o077 != 0 {
            let dir = nix::fcntl::openat(
                &fd,
                ".",
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                mode,
            )?;
            nix::sys::stat::fchmod(&dir, nix::sys::stat::Mode::from_bits_truncate(0o700))?;
        }
        Ok(fd)
    }

    /// A host environment variable, if set.
    pub fn var(&self, name: &str) -> Option<&OsStr> {
        self.env.get(OsStr::new(name)).map(OsString::as_os_str)
    }

    /// Expands a leading `~` (alone or followed by `/`) to the host home.
    /// Any other path is returned as written.
    pub fn expand_tilde(&self, path: &str) -> PathBuf {
        if path == "~" {
            self.home.clone()
        } else if let Some(rest) = path.strip_prefix("~/") {
            self.home.join(rest)
        } else {
            PathBuf::from(path)
        }
    }

    /// Writes a host path for humans: the home folder becomes `~`.
    pub fn display_path(&self, path: &Path) -> String {
        if self.home != Path::new("/") {
            if let Ok(rest) = path.strip_prefix(&self.home) {
                return if rest.as_os_str().is_empty() {
                    "~".to_string()
                } else {
                    format!("~/{}", rest.display())
                };
            }
        }
        path.display().to_string()
    }

    /// The user's profile folder, searched first.
    pub fn user_profiles(&self) -> PathBuf {
        self.config_home.join("antimony/profiles")
    }

    /// antimony's folders that no sandbox may write, even one that binds the
    /// whole home (or `/etc`): configuration (the user's and the system's,
    /// where every later run looks profiles and hooks up by name), profile
    /// homes and state, caches.
    pub fn protected_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![
            self.config_home.join("antimony"),
            PathBuf::from(SYSTEM_CONFIG),
            self.data_home.join("antimony"),
            self.state_home.join("antimony"),
            self.cache_home.join("antimony"),
        ];
        // Running instances' records and control sockets (and the D-Bus
        // proxies' sockets), in the runtime folder or its fallback.
        dirs.push(self.runtime_base.clone());
        dirs
    }
}

fn on_behalf_of(env: &BTreeMap<OsString, OsString>) -> Option<OnBehalfOf> {
    let num =
        |name: &str| -> Option<u32> { env.get(OsStr::new(name))?.to_str()?.parse::<u32>().ok() };
    if let Some(uid) = num("SUDO_UID") {
        let gid = num("SUDO_GID").or_else(|| primary_gid(uid))?;
        return Some(OnBehalfOf { uid, gid });
    }
    if let Some(uid) = num("PKEXEC_UID") {
        let gid = primary_gid(uid)?;
        return Some(OnBehalfOf { uid, gid });
    }
    None
}

fn primary_gid(uid: u32) -> Option<u32> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.gid.as_raw())
}

#[cfg(test)]
pub(crate) fn test_host() -> Host {
    Host {
        uid: 1000,
        gid: 1000,
        user: "user".into(),
        home: "/home/user".into(),
        config_home: "/home/user/.config".into(),
        data_home: "/home/user/.local/share".into(),
        cache_home: "/home/user/.cache".into(),
        state_home: "/home/user/.local/state".into(),
        runtime_dir: Some("/run/user/1000".into()),
        runtime_base: "/run/user/1000/antimony".into(),
        cwd: Some("/home/user".into()),
        env: [("LANG", "C.UTF-8"), ("TERM", "xterm")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect(),
        on_behalf_of: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilde_expansion_and_display() {
        let h = test_host();
        assert_eq!(h.expand_tilde("~"), PathBuf::from("/home/user"));
        assert_eq!(
            h.expand_tilde("~/Downloads"),
            PathBuf::from("/home/user/Downloads")
        );
        assert_eq!(h.expand_tilde("~other/x"), PathBuf::from("~other/x"));
        assert_eq!(h.display_path(Path::new("/home/user/a")), "~/a");
        assert_eq!(h.display_path(Path::new("/home/user")), "~");
        assert_eq!(h.display_path(Path::new("/home/userx")), "/home/userx");
    }

    #[test]
    fn runtime_folder_is_checked_on_its_descriptor() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = std::env::temp_dir().join(format!("antimony-host-test-{}", std::process::id()));
        let mut h = test_host();
        h.uid = nix::unistd::getuid().as_raw();
        h.runtime_base = tmp.join("base");
        // Made private, and found so.
        let dir = h.runtime_folder("instances").unwrap();
        assert_eq!(dir, tmp.join("base/instances"));
        h.check_runtime_folder(&dir).unwrap();
        // Opened to others: refused, and says why.
        std::fs::set_permissions(&h.runtime_base, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = h.runtime_folder("instances").unwrap_err();
        let why = NotPrivate::of(&e).expect("NotPrivate").why.clone();
        assert!(why.contains("mode 0777"), "{why}");
        assert!(h.check_runtime_folder(&dir).is_err());
        // A link to a private folder: refused too.
        std::fs::set_permissions(&h.runtime_base, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&h.runtime_base, tmp.join("link")).unwrap();
        h.runtime_base = tmp.join("link");
        let e = h.runtime_folder("instances").unwrap_err();
        assert_eq!(NotPrivate::of(&e).unwrap().why, "is a symbolic link");
        // A dangling one too.
        std::os::unix::fs::symlink(tmp.join("nowhere"), tmp.join("dangling")).unwrap();
        h.runtime_base = tmp.join("dangling");
        let e = h.runtime_folder("instances").unwrap_err();
        assert_eq!(NotPrivate::of(&e).unwrap().why, "is a symbolic link");
        assert!(!tmp.join("nowhere").exists());
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn sudo_identity() {
        let env: BTreeMap<OsString, OsString> = [("SUDO_UID", "1001"), ("SUDO_GID", "1002")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        assert_eq!(
            on_behalf_of(&env),
            Some(OnBehalfOf {
                uid: 1001,
                gid: 1002
            })
        );
    }
}
