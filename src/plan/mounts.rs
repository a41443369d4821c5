//! The sandbox's file system, as an ordered list of operations on an empty
//! tmpfs root. Nothing here touches the file system; what it needs to know
//! of the host (which `/etc` entries exist, what `/bin` is, where a path
//! really leads) it asks the plan's `HostView`. The operations are carried
//! out after the fork by `sandbox::mount`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::host::HostView;
use crate::host::view::Kind;
pub use crate::profile::BindMode;
use crate::profile::NetworkMode;

/// Where a mount comes from; later sources replace earlier ones at the same
/// place (a profile's bind of `/etc` replaces the default `/etc` entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// The sandbox's skeleton: `/usr`, `/etc` entries, `/proc`, `/dev`, `/tmp`.
    Base,
    /// The profile's home policy.
    Home,
    /// The profile's `[files]`.
    Profile,
    /// Files the program's arguments name (`forward`).
    Forward,
    /// `--ro`/`--rw` on the command line.
    CommandLine,
    /// Masks over antimony's own folders; never replaced.
    Protect,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Bind a host path. `source` is a host path, resolved with the symlink
    /// policy just before the fork.
    Bind {
        source: PathBuf,
        mode: BindMode,
        optional: bool,
    },
    /// A fresh tmpfs with this permission mode, of at most `size` bytes
    /// (set by `limits::size_tmpfs` once the list is final; 0 before).
    Tmpfs {
        mode: u32,
        size: u64,
    },
    /// A fresh procfs for the sandbox's PID namespace.
    Proc,
    /// Bind a path of the sandbox over itself, read-only (`/proc/sys`).
    ReadOnly,
    /// A private devpts instance.
    Devpts,
    Symlink {
        target: PathBuf,
    },
    Dir {
        mode: u32,
    },
    /// A small file written into the root (`/etc/passwd`).
    File {
        contents: Vec<u8>,
        mode: u32,
    },
    /// An overlay over a host folder whose writes go to a private tmpfs.
    Overlay {
        lower: PathBuf,
    },
    /// An empty read-only tmpfs hiding what is beneath.
    Mask,
    /// Bind a folder of the sandbox over itself (with what is mounted
    /// beneath it), changing nothing but that it is now a mount point,
    /// which cannot be renamed or removed: the folders on the way from a
    /// writable bind to a mask, so that the sandbox cannot move them aside
    /// and recreate the masked path (firejail#7154 again).
    Pin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Absolute path inside the sandbox.
    pub dest: PathBuf,
    pub op: Op,
    pub origin: Origin,
}

impl Mount {
    pub fn new(dest: impl Into<PathBuf>, op: Op, origin: Origin) -> Mount {
        Mount {
            dest: dest.into(),
            op,
            origin,
        }
    }

    /// Mounts that replace what was at their place (as opposed to files,
    /// folders and symlinks created inside the root).
    pub fn covers(&self) -> bool {
        matches!(
            self.op,
            Op::Bind { .. } | Op::Tmpfs { .. } | Op::Overlay { .. } | Op::Mask | Op::Proc
        )
    }
}

impl fmt::Display for Mount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.dest.display();
        match &self.op {
            Op::Bind {
                source,
                mode,
                optional,
            } => {
                let q = if *optional { " (optional)" } else { "" };
                write!(f, "{:<7} {} ← {}{q}", mode.key(), d, source.display())
            }
            Op::Tmpfs { mode, size: 0 } => write!(f, "tmpfs   {d} (mode {mode:04o})"),
            Op::Tmpfs { mode, size } => write!(
                f,
                "tmpfs   {d} (mode {mode:04o}, at most {})",
                crate::profile::validate::show_size(*size)
            ),
            Op::Proc => write!(f, "proc    {d}"),
            Op::ReadOnly => write!(f, "ro-self {d}"),
            Op::Devpts => write!(f, "devpts  {d}"),
            Op::Symlink { target } => write!(f, "symlink {d} → {}", target.display()),
            Op::Dir { mode } => write!(f, "dir     {d} (mode {mode:04o})"),
            Op::File { contents, mode } => {
                write!(f, "file    {d} ({} bytes, mode {mode:04o})", contents.len())
            }
            Op::Overlay { lower } => {
                write!(f, "overlay {d} ← {} (writes discarded)", lower.display())
            }
            Op::Mask => write!(f, "mask    {d}"),
            Op::Pin => write!(f, "pin     {d}"),
        }
    }
}

/// `/etc` entries programs commonly need. Never `shadow`, `gshadow`,
/// `sudoers` or other secrets. `passwd` and `group` are written fresh with
/// only the sandbox's own user (see `identity_files`).
pub const ETC_ENTRIES: &[&str] = &[
    "alternatives",
    "bash.bashrc",
    "debian_version",
    "environment",
    "fonts",
    "gai.conf",
    "host.conf",
    "hostname",
    "hosts",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "locale.alias",
    "locale.conf",
    "localtime",
    "lsb-release",
    "machine-id",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "profile",
    "protocols",
    "services",
    "shells",
    "terminfo",
    "timezone",
    "xdg",
];

/// Top-level folders that are, on merged-/usr systems, symlinks into `/usr`.
const USR_LINKS: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// What `/proc` holds that must stay read-only even for a sandbox whose user
/// is root: kernel tunables and triggers (bubblewrap protects the same set).
const PROC_READ_ONLY: &[&str] = &["sys", "sysrq-trigger", "irq", "bus"];

/// A small, fast hasher for the planner's maps of paths (the std default,
/// SipHash, guards against inputs chosen to collide; these are the user's
/// own profile's paths, and a collision only costs time).
#[derive(Default, Clone, Copy)]
pub(crate) struct PathHasher(u64);

impl std::hash::Hasher for PathHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` with `PathHasher`.
pub(crate) type PathMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<PathHasher>>;

/// `dir/name` (`dir` without a trailing `/`; "" for the root), built with
/// one allocation: the base layout makes some seventy of these per run.
fn child(dir: &str, name: &str) -> PathBuf {
    let mut s = String::with_capacity(dir.len() + 1 + name.len());
    s.push_str(dir);
    s.push('/');
    s.push_str(name);
    PathBuf::from(s)
}

/// Facts about the host that the base layout depends on.
#[derive(Debug, Clone)]
pub struct BaseFacts {
    /// `/bin` and friends: `Some(target)` when a symlink, `None` when a real folder.
    pub usr_links: Vec<(String, Option<PathBuf>)>,
    pub etc: Vec<String>,
    pub passwd: Vec<u8>,
    pub group: Vec<u8>,
}

impl BaseFacts {
    /// Looks at the host: one `lstat` per candidate, two small reads.
    pub fn probe(fs: &dyn HostView, uid: u32, gid: u32, user: &str, home: &Path) -> BaseFacts {
        let usr_links = USR_LINKS
            .iter()
            .filter_map(|name| {
                let path = child("", name);
                match fs.lstat(&path).ok()?.kind {
                    Kind::Symlink => Some((name.to_string(), fs.read_link(&path).ok())),
                    Kind::Dir => Some((name.to_string(), None)),
                    _ => None,
                }
            })
            .collect();
        let etc = ETC_ENTRIES
            .iter()
            .filter(|e| fs.exists(&child("/etc", e)))
            .map(|e| e.to_string())
            .collect();
        let (passwd, group) = identity_files(fs, uid, gid, user, home);
        BaseFacts {
            usr_links,
            etc,
            passwd,
            group,
        }
    }
}

/// The id field (the third) of a `passwd` or `group` line.
fn id_of(line: &str) -> Option<u32> {
    line.split(':').nth(2)?.parse().ok()
}

/// The first line of `file` for each of `wanted`, in one pass.
fn first_lines(file: &str, wanted: [u32; 3]) -> [Option<&str>; 3] {
    let mut found = [None; 3];
    for line in file.lines() {
        let Some(id) = id_of(line) else { continue };
        for (w, f) in wanted.iter().zip(found.iter_mut()) {
            if *w == id && f.is_none() {
                *f = Some(line);
            }
        }
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    found
}

/// Minimal `/etc/passwd` and `/etc/group` naming only root, the sandbox's
/// user and nobody: the sandbox learns no other account on the host.
pub fn identity_files(
    fs: &dyn HostView,
    uid: u32,
    gid: u32,
    user: &str,
    home: &Path,
) -> (Vec<u8>, Vec<u8>) {
    let text = |path: &str| {
        fs.read(Path::new(path))
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default()
    };
    let host_passwd = text("/etc/passwd");
    let host_group = text("/etc/group");
    identity_from(&host_passwd, &host_group, uid, gid, user, home)
}

/// `identity_files` from the host's `passwd` and `group` texts.
fn identity_from(
    host_passwd: &str,
    host_group: &str,
    uid: u32,
    gid: u32,
    user: &str,
    home: &Path,
) -> (Vec<u8>, Vec<u8>) {
    let mut passwd = String::new();
    let mut group = String::new();
    let has_id = |text: &str, wanted: u32| text.lines().any(|l| id_of(l) == Some(wanted));
    let wanted_users = [0, uid, 65534];
    for (wanted, line) in wanted_users
        .into_iter()
        .zip(first_lines(host_passwd, wanted_users))
    {
        if has_id(&passwd, wanted) {
            continue;
        }
        match line {
            // Keep the account's name, ids and shell; the home is the sandbox's.
            Some(line) if wanted == uid => {
                let f: Vec<&str> = line.split(':').collect();
                if f.len() >= 7 {
                    passwd.push_str(&format!(
                        "{}:x:{}:{}:{}:{}:{}\n",
                        f[0],
                        f[2],
                        f[3],
                        f[4],
                        home.display(),
                        f[6]
                    ));
                }
            }
            Some(line) => {
                passwd.push_str(line);
                passwd.push('\n');
            }
            None if wanted == uid => passwd.push_str(&format!(
                "{user}:x:{uid}:{gid}::{}:/bin/sh\n",
                home.display()
            )),
            None => {}
        }
    }
    let wanted_groups = [0, gid, 65534];
    for (wanted, line) in wanted_groups
        .into_iter()
        .zip(first_lines(host_group, wanted_groups))
    {
        if has_id(&group, wanted) {
            continue;
        }
        if let Some(line) = line {
            // Drop the member list: it names other accounts.
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 3 {
                group.push_str(&format!("{}:x:{}:\n", f[0], f[2]));
            }
        }
    }
    (passwd.into_bytes(), group.into_bytes())
}

/// The skeleton every sandbox starts from.
pub fn base(facts: &BaseFacts, uid: u32, network: NetworkMode) -> Vec<Mount> {
    let b = Origin::Base;
    let mut m = vec![Mount::new(
        "/usr",
        Op::Bind {
            source: "/usr".into(),
            mode: BindMode::Ro,
            optional: false,
        },
        b,
    )];
    for (name, link) in &facts.usr_links {
        let dest = child("", name);
        m.push(match link {
            Some(target) => Mount::new(
                dest,
                Op::Symlink {
                    target: target.clone(),
                },
                b,
            ),
            None => Mount::new(
                dest.clone(),
                Op::Bind {
                    source: dest,
                    mode: BindMode::Ro,
                    optional: true,
                },
                b,
            ),
        });
    }
    for entry in &facts.etc {
        let path = child("/etc", entry);
        m.push(Mount::new(
            path.clone(),
            Op::Bind {
                source: path,
                mode: BindMode::Ro,
                optional: true,
            },
            b,
        ));
    }
    if network.any() {
        // An isolated sandbox asks pasta's DNS address, not the host's
        // resolver (which may be on the host's loopback).
        if network == NetworkMode::Isolated {
            m.push(Mount::new(
                "/etc/resolv.conf",
                Op::File {
                    contents: super::network::resolv_conf(),
                    mode: 0o644,
                },
                b,
            ));
        }
        for entry in [
            (network == NetworkMode::Host).then_some("resolv.conf"),
            Some("ssl"),
            Some("ca-certificates"),
            Some("pki"),
            Some("crypto-policies"),
        ]
        .into_iter()
        .flatten()
        {
            let path = child("/etc", entry);
            m.push(Mount::new(
                path.clone(),
                Op::Bind {
                    source: path,
                    mode: BindMode::Ro,
                    optional: true,
                },
                b,
            ));
        }
    }
    m.push(Mount::new(
        "/etc/passwd",
        Op::File {
            contents: facts.passwd.clone(),
            mode: 0o644,
        },
        b,
    ));
    m.push(Mount::new(
        "/etc/group",
        Op::File {
            contents: facts.group.clone(),
            mode: 0o644,
        },
        b,
    ));
    m.push(Mount::new(
        "/etc/mtab",
        Op::Symlink {
            target: "../proc/self/mounts".into(),
        },
        b,
    ));
    m.push(Mount::new("/proc", Op::Proc, b));
    for p in PROC_READ_ONLY {
        m.push(Mount::new(child("/proc", p), Op::ReadOnly, b));
    }
    m.push(Mount::new(
        "/dev",
        Op::Tmpfs {
            mode: 0o755,
            size: 0,
        },
        b,
    ));
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let path = child("/dev", node);
        m.push(Mount::new(
            path.clone(),
            Op::Bind {
                source: path,
                mode: BindMode::Dev,
                optional: false,
            },
            b,
        ));
    }
    m.push(Mount::new("/dev/pts", Op::Devpts, b));
    m.push(Mount::new(
        "/dev/ptmx",
        Op::Symlink {
            target: "pts/ptmx".into(),
        },
        b,
    ));
    m.push(Mount::new(
        "/dev/shm",
        Op::Tmpfs {
            mode: 0o1777,
            size: 0,
        },
        b,
    ));
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        m.push(Mount::new(
            child("/dev", name),
            Op::Symlink {
                target: target.into(),
            },
            b,
        ));
    }
    m.push(Mount::new(
        "/tmp",
        Op::Tmpfs {
            mode: 0o1777,
            size: 0,
        },
        b,
    ));
    m.push(Mount::new(
        "/var/tmp",
        Op::Tmpfs {
            mode: 0o1777,
            size: 0,
        },
        b,
    ));
    m.push(Mount::new(
        format!("/run/user/{uid}"),
        Op::Tmpfs {
            mode: 0o700,
            size: 0,
        },
        b,
    ));
    m
}

/// A path as the kernel resolves it (every link followed), for comparing
/// spellings of one place; where it does not exist, its nearest existing
/// folder resolved and the rest appended.
pub fn real_path(fs: &dyn HostView, p: &Path) -> PathBuf {
    let mut missing = Vec::new();
    let mut cur = p;
    loop {
        if let Ok(mut real) = fs.canonicalize(cur) {
            real.extend(missing.iter().rev());
            return real;
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_os_string());
                cur = parent;
            }
            _ => return p.to_path_buf(),
        }
    }
}

/// The host folders a sandbox with these mounts can write (the sources of
/// its writable binds that a profile or the command line chose), each as
/// written and as resolved (`real_path`).
pub fn writable_sources(fs: &dyn HostView, mounts: &[Mount]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for m in mounts {
        if let Op::Bind {
            source,
            mode: BindMode::Rw | BindMode::Dev,
            ..
        } = &m.op
        {
            if m.origin != Origin::Base {
                out.push(source.clone());
                let real = real_path(fs, source);
                if real != *source {
                    out.push(real);
                }
            }
        }
    }
    out
}

/// Mounts an empty read-only tmpfs over each protected folder that a bind
/// would otherwise expose (firejail#7154: a sandbox wrote the profile that
/// its next launch trusted). `protected` holds each folder as written and
/// as resolved (`real_path`); a user-chosen bind source is compared both
/// ways too, so another spelling of the same place is caught.
pub fn protect(
    fs: &dyn HostView,
    mounts: &[Mount],
    protected: &[(PathBuf, PathBuf)],
) -> Vec<Mount> {
    let mut masks = Vec::new();
    for m in mounts {
        let source = match &m.op {
            Op::Bind { source, .. } => source,
            Op::Overlay { lower } => lower,
            _ => continue,
        };
        let real = matches!(
            m.origin,
            Origin::Profile | Origin::Forward | Origin::CommandLine
        )
        .then(|| real_path(fs, source));
        for (p, p_real) in protected {
            let rest = p
                .strip_prefix(source)
                .ok()
                .or_else(|| real.as_deref().and_then(|r| p_real.strip_prefix(r).ok()));
            if let Some(rest) = rest {
                let dest = if rest.as_os_str().is_empty() {
                    m.dest.clone()
                } else {
                    m.dest.join(rest)
                };
                if !masks.iter().any(|x: &Mount| x.dest == dest) {
                    // Where the sandbox can write, every folder between the
                    // bind and the mask is pinned.
                    if matches!(
                        m.op,
                        Op::Bind {
                            mode: BindMode::Rw | BindMode::Dev,
                            ..
                        }
                    ) {
                        let mut pin = m.dest.clone();
                        for part in rest.parent().into_iter().flat_map(Path::components) {
                            pin.push(part);
                            if !masks.iter().any(|x: &Mount| x.dest == pin) {
                                masks.push(Mount::new(pin.clone(), Op::Pin, Origin::Protect));
                            }
                        }
                    }
                    masks.push(Mount::new(dest, Op::Mask, Origin::Protect));
                }
            }
        }
    }
    masks
}

/// Orders the list for mounting and drops what later sources replace.
///
/// A mount from a later origin replaces every earlier-origin mount at or
/// beneath its place; within one origin the last mount at a place wins.
/// Then parents come before children (stable by depth), so each mount point
/// exists when its turn comes. O(n × depth) with hashing (`Path` hashes and
/// compares by components, as `starts_with` does), never a rescan of the
/// mount table and no pairwise comparison of the list.
pub fn finish(mut mounts: Vec<Mount>) -> Vec<Mount> {
    let keep: Vec<bool> = {
        // Last one at each (origin, dest) wins.
        let mut last: PathMap<(Origin, &Path), usize> =
            PathMap::with_capacity_and_hasher(mounts.len(), Default::default());
        for (i, m) in mounts.iter().enumerate() {
            last.insert((m.origin, m.dest.as_path()), i);
        }
        // Each covering place, with the latest origin that covers it: a
        // mount is replaced when one of its ancestors (or its own place) is
        // covered by a later origin.
        let mut covering: PathMap<&Path, Origin> = PathMap::default();
        for m in mounts.iter().filter(|m| m.covers()) {
            covering
                .entry(m.dest.as_path())
                .and_modify(|o| *o = (*o).max(m.origin))
                .or_insert(m.origin);
        }
        mounts
            .iter()
            .enumerate()
            .map(|(i, m)| {
                last.get(&(m.origin, m.dest.as_path())) == Some(&i)
                    && (m.origin == Origin::Protect
                        || !m
                            .dest
                            .ancestors()
                            .any(|a| covering.get(a).is_some_and(|&o| o > m.origin)))
            })
            .collect()
    };
    let mut i = 0;
    mounts.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    // Stable, and each depth counted once rather than per comparison.
    mounts.sort_by_cached_key(|m| m.dest.components().count());
    mounts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(dest: &str, origin: Origin) -> Mount {
        Mount::new(
            dest,
            Op::Bind {
                source: dest.into(),
                mode: BindMode::Ro,
                optional: false,
            },
            origin,
        )
    }

    #[test]
    fn later_origins_replace_and_parents_come_first() {
        let list = vec![
            bind("/etc/hosts", Origin::Base),
            bind("/usr", Origin::Base),
            bind("/etc", Origin::Profile),
            bind("/home/u/a/b", Origin::Profile),
            bind("/home/u/a", Origin::Profile),
            bind("/home/u/a", Origin::CommandLine),
        ];
        let out = finish(list);
        let dests: Vec<_> = out
            .iter()
            .map(|m| (m.dest.display().to_string(), m.origin))
            .collect();
        assert_eq!(
            dests,
            [
                ("/usr".to_string(), Origin::Base),
                ("/etc".to_string(), Origin::Profile),
                ("/home/u/a".to_string(), Origin::CommandLine),
            ]
        );
    }

    #[test]
    fn masks_follow_binds_of_ancestors() {
        let list = vec![Mount::new(
            "/home/u",
            Op::Bind {
                source: "/home/u".into(),
                mode: BindMode::Rw,
                optional: false,
            },
            Origin::Profile,
        )];
        let protected = ["/home/u/.config/antimony", "/srv/x"].map(|p| (p.into(), p.into()));
        let masks = protect(&crate::host::view::fake::FakeHost::new(), &list, &protected);
        // `.config` is pinned so that the sandbox cannot move it aside and
        // make a new `.config/antimony`.
        let got: Vec<(&Path, &Op)> = masks.iter().map(|m| (m.dest.as_path(), &m.op)).collect();
        assert_eq!(
            got,
            [
                (Path::new("/home/u/.config"), &Op::Pin),
                (Path::new("/home/u/.config/antimony"), &Op::Mask)
            ]
        );
    }

    #[test]
    fn identity_files_hold_only_the_user() {
        let (passwd, group) =
            identity_files(&crate::host::RealHost, 0, 0, "root", Path::new("/root"));
        let passwd = String::from_utf8(passwd).unwrap();
        assert!(passwd.starts_with("root:"));
        assert!(passwd.lines().count() <= 2, "{passwd}");
        assert!(!String::from_utf8(group).unwrap().contains(",")); // no member lists
    }

    /// The former implementations, kept as the reference the faster ones
    /// must agree with.
    mod reference {
        use super::super::*;
        use std::collections::BTreeMap;

        pub fn finish(mut mounts: Vec<Mount>) -> Vec<Mount> {
            let mut last: BTreeMap<(Origin, PathBuf), usize> = BTreeMap::new();
            for (i, m) in mounts.iter().enumerate() {
                last.insert((m.origin, m.dest.clone()), i);
            }
            let mut covering: BTreeMap<Origin, Vec<PathBuf>> = BTreeMap::new();
            for m in mounts.iter().filter(|m| m.covers()) {
                covering.entry(m.origin).or_default().push(m.dest.clone());
            }
            let keep: Vec<bool> = mounts
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    last.get(&(m.origin, m.dest.clone())) == Some(&i)
                        && !covering.iter().any(|(origin, places)| {
                            *origin > m.origin
                                && m.origin != Origin::Protect
                                && places.iter().any(|p| m.dest.starts_with(p))
                        })
                })
                .collect();
            let mut i = 0;
            mounts.retain(|_| {
                i += 1;
                keep[i - 1]
            });
            mounts.sort_by_key(|m| m.dest.components().count());
            mounts
        }
    }

    /// A small deterministic generator (no dependency for one test).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 33) as usize) % n
        }
    }

    #[test]
    fn finish_agrees_with_the_pairwise_reference() {
        // Spellings that compare equal by components, to catch a hash that
        // would not.
        const PARTS: &[&str] = &["a", "b", "etc", "usr", "home", "x y"];
        const SEPS: &[&str] = &["/", "//", "/./"];
        const ORIGINS: &[Origin] = &[
            Origin::Base,
            Origin::Home,
            Origin::Profile,
            Origin::CommandLine,
            Origin::Protect,
        ];
        let mut rng = Lcg(7);
        for round in 0..2000 {
            let n = 1 + rng.next(if round % 10 == 0 { 200 } else { 25 });
            let list: Vec<Mount> = (0..n)
                .map(|_| {
                    let depth = rng.next(4);
                    let mut dest = String::new();
                    for _ in 0..=depth {
                        dest.push_str(SEPS[rng.next(SEPS.len())]);
                        dest.push_str(PARTS[rng.next(PARTS.len())]);
                    }
                    if rng.next(5) == 0 {
                        dest.push('/');
                    }
                    if depth == 0 && rng.next(20) == 0 {
                        dest = "/".into();
                    }
                    let op = match rng.next(5) {
                        0 => Op::Tmpfs {
                            mode: 0o755,
                            size: 0,
                        },
                        1 => Op::Symlink { target: "t".into() },
                        2 => Op::Mask,
                        3 => Op::File {
                            contents: Vec::new(),
                            mode: 0o644,
                        },
                        _ => Op::Bind {
                            source: dest.clone().into(),
                            mode: BindMode::Ro,
                            optional: false,
                        },
                    };
                    Mount::new(dest, op, ORIGINS[rng.next(ORIGINS.len())])
                })
                .collect();
            assert_eq!(
                finish(list.clone()),
                reference::finish(list),
                "round {round}"
            );
        }
    }

    #[test]
    fn identity_files_keep_root_the_user_and_nobody() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                      bad:x:notanumber:1::/:/bin/sh\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
                      alice:x:1000:1000:Alice:/home/alice:/bin/zsh\n\
                      again:x:1000:1000:Again:/home/again:/bin/sh\n\
                      bob:x:1001:1001::/home/bob:/bin/sh\n";
        let group = "root:x:0:\nusers:x:100:alice,bob\nalice:x:1000:bob\n\
                     nogroup:x:65534:\nalice2:x:1000:\nodd:x\n";
        let home = Path::new("/home/sandboxed");
        let text = |(p, g): (Vec<u8>, Vec<u8>)| {
            (String::from_utf8(p).unwrap(), String::from_utf8(g).unwrap())
        };
        // The user's first entry, with the sandbox's home; no member lists.
        assert_eq!(
            text(identity_from(passwd, group, 1000, 1000, "user", home)),
            (
                "root:x:0:0:root:/root:/bin/bash\n\
                 alice:x:1000:1000:Alice:/home/sandboxed:/bin/zsh\n\
                 nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
                    .to_string(),
                "root:x:0:\nalice:x:1000:\nnogroup:x:65534:\n".to_string()
            )
        );
        // A user the host does not list gets a made-up entry.
        assert_eq!(
            text(identity_from(passwd, group, 4242, 100, "user", home)),
            (
                "root:x:0:0:root:/root:/bin/bash\n\
                 user:x:4242:100::/home/sandboxed:/bin/sh\n\
                 nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
                    .to_string(),
                "root:x:0:\nusers:x:100:\nnogroup:x:65534:\n".to_string()
            )
        );
        // Root is listed once, with the sandbox's home.
        assert_eq!(
            text(identity_from(passwd, group, 0, 0, "root", home)),
            (
                "root:x:0:0:root:/home/sandboxed:/bin/bash\n\
                 nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
                    .to_string(),
                "root:x:0:\nnogroup:x:65534:\n".to_string()
            )
        );
        // No host files: only the user.
        assert_eq!(
            text(identity_from("", "", 1000, 1000, "user", home)),
            (
                "user:x:1000:1000::/home/sandboxed:/bin/sh\n".to_string(),
                String::new()
            )
        );
    }
}
