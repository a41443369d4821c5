//! The host's files as the planner sees them: a small interface over the
//! few questions a plan asks of the host (what is at a path, where a link
//! leads, what a folder lists, what a file holds, where a program is on a
//! PATH, which Landlock ABI the kernel implements, where antimony itself
//! is, how much RAM the machine has).
//!
//! `plan::build` asks only through a `HostView`, so that a plan is a
//! function of the profile, the options, the host and the instance id.
//! `RealHost` answers with one system call per question, as the planner
//! did before it asked through this interface; the unit tests answer from
//! memory (`fake::FakeHost`).

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

/// What kind of entry a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// A device, FIFO or socket.
    Other,
}

/// The facts of `stat(2)` the planner uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub kind: Kind,
    /// The permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    /// How many names the file has (hard links).
    pub nlink: u64,
}

impl Stat {
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }

    /// A regular file someone may execute.
    pub fn is_executable_file(&self) -> bool {
        self.kind == Kind::File && self.mode & 0o111 != 0
    }

    fn of(m: &std::fs::Metadata) -> Stat {
        use std::os::unix::fs::MetadataExt;
        let t = m.file_type();
        let kind = if t.is_symlink() {
            Kind::Symlink
        } else if t.is_dir() {
            Kind::Dir
        } else if t.is_file() {
            Kind::File
        } else {
            Kind::Other
        };
        Stat {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            nlink: m.nlink(),
        }
    }
}

/// The host, as far as a plan depends on it.
pub trait HostView {
    /// `stat(2)`: what `path` names, links followed.
    fn stat(&self, path: &Path) -> io::Result<Stat>;
    /// `lstat(2)`: what `path` names, a final link not followed.
    fn lstat(&self, path: &Path) -> io::Result<Stat>;
    /// Where a symbolic link points, as written in it.
    fn read_link(&self, path: &Path) -> io::Result<PathBuf>;
    /// The names in a folder, in no particular order.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>>;
    /// A whole (small) file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// The first bytes of a file, into `buf` (one read; a FIFO in the
    /// file's place does not block).
    fn read_head(&self, path: &Path, buf: &mut [u8]) -> io::Result<usize>;
    /// The path with every link followed (`realpath(3)`); the path must exist.
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf>;
    /// The Landlock ABI the kernel implements (0: none).
    fn landlock_abi(&self) -> i32;
    /// antimony's own program.
    fn current_exe(&self) -> io::Result<PathBuf>;
    /// The machine's RAM in bytes (0: unknown).
    fn memory_total(&self) -> u64;
    /// The host's own IP addresses, loopback aside (none known: empty).
    fn addresses(&self) -> Vec<std::net::IpAddr> {
        Vec::new()
    }

    /// Whether something exists at `path` (links followed).
    fn exists(&self, path: &Path) -> bool {
        self.stat(path).is_ok()
    }

    /// Whether `path` is a folder (links followed).
    fn is_dir(&self, path: &Path) -> bool {
        self.stat(path).is_ok_and(|s| s.is_dir())
    }

    /// The first executable file `name` in the folders of `path`
    /// (`:`-separated), one `stat` per folder until found.
    fn find_program(&self, name: &str, path: &str) -> Option<PathBuf> {
        path.split(':')
            .map(|dir| Path::new(dir).join(name))
            .find(|candidate| self.stat(candidate).is_ok_and(|s| s.is_executable_file()))
    }
}

/// The host antimony runs on, through `std::fs` and the kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealHost;

impl HostView for RealHost {
    fn stat(&self, path: &Path) -> io::Result<Stat> {
        std::fs::metadata(path).map(|m| Stat::of(&m))
    }

    fn lstat(&self, path: &Path) -> io::Result<Stat> {
        std::fs::symlink_metadata(path).map(|m| Stat::of(&m))
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::read_link(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        Ok(std::fs::read_dir(path)?
            .flatten()
            .map(|e| e.file_name())
            .collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn read_head(&self, path: &Path, buf: &mut [u8]) -> io::Result<usize> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        // Non-blocking: a FIFO in a program's place must not hang the launch.
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?
            .read(buf)
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::canonicalize(path)
    }

    fn landlock_abi(&self) -> i32 {
        // SAFETY: landlock_create_ruleset with a NULL attribute, size 0 and
        // the VERSION flag only returns the ABI version (or -1 with errno);
        // it creates nothing.
        let v = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<u8>(),
                0usize,
                1u32, // LANDLOCK_CREATE_RULESET_VERSION
            )
        };
        if v < 0 { 0 } else { v as i32 }
    }

    fn current_exe(&self) -> io::Result<PathBuf> {
        std::env::current_exe()
    }

    fn memory_total(&self) -> u64 {
        // SAFETY: sysinfo(2) fills the struct it is given.
        let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
        // SAFETY: as above; a pointer to a local.
        if unsafe { libc::sysinfo(&mut info) } != 0 {
            return 0;
        }
        (info.totalram as u64).saturating_mul(u64::from(info.mem_unit.max(1)))
    }

    fn addresses(&self) -> Vec<std::net::IpAddr> {
        let Ok(list) = nix::ifaddrs::getifaddrs() else {
            return Vec::new();
        };
        let mut out: Vec<std::net::IpAddr> = list
            .filter_map(|i| i.address)
            .filter_map(|a| {
                if let Some(v4) = a.as_sockaddr_in() {
                    Some(std::net::IpAddr::V4(v4.ip()))
                } else {
                    a.as_sockaddr_in6().map(|v6| std::net::IpAddr::V6(v6.ip()))
                }
            })
            .filter(|a| !a.is_loopback())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// A host in memory, for unit tests: files, folders and links at absolute
/// paths, looked up as the kernel would (links followed on the way).
#[cfg(test)]
pub mod fake {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::Component;

    #[derive(Debug, Clone)]
    enum Node {
        File { data: Vec<u8>, stat: Stat },
        Dir { stat: Stat },
        Link(PathBuf),
    }

    #[derive(Debug, Clone)]
    pub struct FakeHost {
        nodes: BTreeMap<PathBuf, Node>,
        pub abi: i32,
        pub exe: PathBuf,
        /// RAM, in bytes.
        pub ram: u64,
    }

    impl Default for FakeHost {
        fn default() -> FakeHost {
            FakeHost::new()
        }
    }

    fn not_found() -> io::Error {
        io::Error::from_raw_os_error(libc::ENOENT)
    }

    impl FakeHost {
        /// An empty root folder; no Landlock; antimony at `/usr/bin/antimony`.
        pub fn new() -> FakeHost {
            let mut nodes = BTreeMap::new();
            nodes.insert(
                PathBuf::from("/"),
                Node::Dir {
                    stat: Stat {
                        kind: Kind::Dir,
                        mode: 0o755,
                        uid: 0,
                        nlink: 1,
                    },
                },
            );
            FakeHost {
                nodes,
                abi: 0,
                exe: "/usr/bin/antimony".into(),
                ram: 8 << 30,
            }
        }

        /// Makes `path` and its missing parents folders (root's, 0755).
        pub fn dir(&mut self, path: impl AsRef<Path>) -> &mut FakeHost {
            self.dir_as(path, 0, 0o755)
        }

        pub fn dir_as(&mut self, path: impl AsRef<Path>, uid: u32, mode: u32) -> &mut FakeHost {
            let path = path.as_ref();
            if let Some(parent) = path.parent() {
                if !self.nodes.contains_key(parent) {
                    self.dir(parent);
                }
            }
            let stat = Stat {
                kind: Kind::Dir,
                mode,
                uid,
                nlink: 1,
            };
            self.nodes.insert(path.to_path_buf(), Node::Dir { stat });
            self
        }

        /// A file of root's with this mode (0755: a program).
        pub fn file(&mut self, path: impl AsRef<Path>, mode: u32, data: &str) -> &mut FakeHost {
            self.file_as(path, 0, mode, 1, data)
        }

        pub fn file_as(
            &mut self,
            path: impl AsRef<Path>,
            uid: u32,
            mode: u32,
            nlink: u64,
            data: &str,
        ) -> &mut FakeHost {
            let path = path.as_ref();
            if let Some(parent) = path.parent() {
                if !self.nodes.contains_key(parent) {
                    self.dir(parent);
                }
            }
            let stat = Stat {
                kind: Kind::File,
                mode,
                uid,
                nlink,
            };
            self.nodes.insert(
                path.to_path_buf(),
                Node::File {
                    data: data.as_bytes().to_vec(),
                    stat,
                },
            );
            self
        }

        pub fn link(&mut self, path: impl AsRef<Path>, target: impl AsRef<Path>) -> &mut FakeHost {
            let path = path.as_ref();
            if let Some(parent) = path.parent() {
                if !self.nodes.contains_key(parent) {
                    self.dir(parent);
                }
            }
            self.nodes.insert(
                path.to_path_buf(),
                Node::Link(target.as_ref().to_path_buf()),
            );
            self
        }

        /// The place `path` names, links followed on the way (and at the
        /// end when `follow`), as path lookup does; `None` when something
        /// on the way is missing.
        fn resolve(&self, path: &Path, follow: bool) -> Option<PathBuf> {
            let mut cur = PathBuf::from("/");
            let mut todo: Vec<OsString> = path
                .components()
                .rev()
                .map(|c| c.as_os_str().to_os_string())
                .collect();
            let mut hops = 0;
            while let Some(part) = todo.pop() {
                match Path::new(&part).components().next() {
                    Some(Component::RootDir) => cur = PathBuf::from("/"),
                    Some(Component::ParentDir) => {
                        cur.pop();
                    }
                    Some(Component::Normal(name)) => {
                        let next = cur.join(name);
                        match self.nodes.get(&next)? {
                            Node::Link(target) if follow || !todo.is_empty() => {
                                hops += 1;
                                if hops > 40 {
                                    return None;
                                }
                                todo.extend(
                                    target
                                        .components()
                                        .rev()
                                        .map(|c| c.as_os_str().to_os_string()),
                                );
                            }
                            Node::File { .. } if !todo.is_empty() => return None,
                            _ => cur = next,
                        }
                    }
                    _ => {}
                }
            }
            Some(cur)
        }

        fn node(&self, path: &Path, follow: bool) -> io::Result<(PathBuf, &Node)> {
            let place = self.resolve(path, follow).ok_or_else(not_found)?;
            let node = self.nodes.get(&place).ok_or_else(not_found)?;
            Ok((place, node))
        }
    }

    fn stat_of(node: &Node) -> Stat {
        match node {
            Node::File { stat, .. } | Node::Dir { stat } => *stat,
            Node::Link(_) => Stat {
                kind: Kind::Symlink,
                mode: 0o777,
                uid: 0,
                nlink: 1,
            },
        }
    }

    impl HostView for FakeHost {
        fn stat(&self, path: &Path) -> io::Result<Stat> {
            self.node(path, true).map(|(_, n)| stat_of(n))
        }

        fn lstat(&self, path: &Path) -> io::Result<Stat> {
            self.node(path, false).map(|(_, n)| stat_of(n))
        }

        fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
            match self.node(path, false)? {
                (_, Node::Link(target)) => Ok(target.clone()),
                _ => Err(io::Error::from_raw_os_error(libc::EINVAL)),
            }
        }

        fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
            let (place, node) = self.node(path, true)?;
            if !matches!(node, Node::Dir { .. }) {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
            }
            Ok(self
                .nodes
                .keys()
                .filter(|p| p.parent() == Some(place.as_path()))
                .filter_map(|p| p.file_name().map(|n| n.to_os_string()))
                .collect())
        }

        fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
            match self.node(path, true)? {
                (_, Node::File { data, .. }) => Ok(data.clone()),
                _ => Err(io::Error::from_raw_os_error(libc::EISDIR)),
            }
        }

        fn read_head(&self, path: &Path, buf: &mut [u8]) -> io::Result<usize> {
            let data = self.read(path)?;
            let n = data.len().min(buf.len());
            buf[..n].copy_from_slice(&data[..n]);
            Ok(n)
        }

        fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
            self.node(path, true).map(|(place, _)| place)
        }

        fn landlock_abi(&self) -> i32 {
            self.abi
        }

        fn current_exe(&self) -> io::Result<PathBuf> {
            Ok(self.exe.clone())
        }

        fn memory_total(&self) -> u64 {
            self.ram
        }
    }

    #[test]
    fn lookups_follow_links_as_the_kernel_does() {
        let mut h = FakeHost::new();
        h.file("/usr/bin/tool", 0o755, "#!/bin/sh\n")
            .link("/bin", "usr/bin")
            .link("/usr/bin/alias", "/bin/tool");
        assert_eq!(h.stat(Path::new("/bin/tool")).unwrap().kind, Kind::File);
        assert_eq!(h.lstat(Path::new("/bin")).unwrap().kind, Kind::Symlink);
        assert_eq!(
            h.canonicalize(Path::new("/usr/bin/alias")).unwrap(),
            Path::new("/usr/bin/tool")
        );
        assert_eq!(
            h.find_program("tool", "/opt:/bin"),
            Some(PathBuf::from("/bin/tool"))
        );
        assert!(h.stat(Path::new("/bin/tool/x")).is_err());
        let mut names = h.read_dir(Path::new("/bin")).unwrap();
        names.sort();
        assert_eq!(names, ["alias", "tool"]);
    }
}
