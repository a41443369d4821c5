//! No run changes what a later run loads.
//!
//! A run loads files that decide what runs on the host: the profile, every
//! profile it inherits, the definitions of the reusable hooks it uses, the
//! programs its host hooks execute (and their `#!` interpreters), and
//! antimony itself. The next run loads them again, by the same paths. A
//! sandbox that could change one of them, or the way to it, would choose
//! what that run does on the host.
//!
//! The way to a file is every folder on its path and every symbolic link
//! followed to reach it. The sandbox changes the way by renaming or
//! replacing one of them, which needs write access to the folder holding
//! it: a host entry is within reach when it lies beneath the source of a
//! writable bind (or of the persistent home) and, at its place in the
//! sandbox, nothing is mounted on it or on a folder between it and the
//! bind. A mount point cannot be renamed, replaced or removed from inside:
//! rename(2), unlink(2) and rmdir(2) answer EBUSY for an entry that is a
//! mount point in the caller's namespace, but renaming a folder *above* a
//! mount point works and takes the mount along (checked on Linux 6.x; the
//! acceptance tests in `hostside::profiles` show it). The sandbox cannot
//! unmount anything: it has no capabilities, seccomp refuses the mount
//! calls, and in a nested user namespace the mounts are locked to their
//! parents (umount answers EINVAL, a bind without its children too).
//!
//! What is within reach is then either guarded or refused:
//! - a file antimony reads whole itself (a profile, a hook definition,
//!   antimony's own program) is bound read-only over itself in the
//!   sandbox, and every folder on its way within reach is bound over itself
//!   (pinned), so that nothing on the way can be written, renamed or
//!   replaced: a profile can live in the project the sandbox works in. A
//!   profile's (or definition's) folder is read-only with it, unless it is
//!   the bind's top: the project's other profiles kept beside it
//!   (`.antimony/`) are what a later run loads;
//! - a hook's program (or its `#!` interpreter) within reach is refused, as
//!   the hook rule always had it: what a program loads beside itself
//!   (libraries, sourced scripts) is unknown. In a folder bound read-only
//!   inside a writable bind, it is safe once the folders above are pinned;
//! - so is what cannot be guarded: a symbolic link on the way (nothing can
//!   be mounted on a link), a file bound writable itself, a file with other
//!   names (hard links) the sandbox might write it through, a file missing.
//!
//! Nothing is looked at unless the plan has a writable bind, and then only
//! through the plan's `HostView`.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::mounts::{BindMode, Mount, Op, Origin, PathMap, real_path};
use crate::host::HostView;
use crate::host::view::Kind;

/// What a loaded file is to the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// The profile's own file.
    Profile,
    /// A profile it inherits, by name.
    Inherited(String),
    /// The definition of a reusable hook (the hook's label).
    Definition(String),
    /// antimony's own program, which every later launch runs.
    Launcher,
    /// The program a host hook executes (the hook's label).
    Program(String),
    /// The `#!` interpreter of a host hook's program (the hook's label).
    Interpreter(String),
}

impl What {
    /// antimony reads the whole file itself: keeping that one file and its
    /// way fixed is enough. A program may load anything beside it.
    fn guardable(&self) -> bool {
        matches!(
            self,
            What::Profile | What::Inherited(_) | What::Definition(_) | What::Launcher
        )
    }
}

impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            What::Profile => write!(f, "the profile"),
            What::Inherited(name) => write!(f, "`{name}`, which the profile inherits"),
            What::Definition(hook) => write!(f, "the definition of {hook}"),
            What::Launcher => write!(f, "antimony itself"),
            What::Program(hook) => write!(f, "the program of {hook}"),
            What::Interpreter(hook) => write!(f, "the `#!` interpreter of the program of {hook}"),
        }
    }
}

/// A file the run loads, by the path the next run will load it by.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    pub what: What,
}

/// A loaded file the sandbox could reach, kept read-only and in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guarded {
    /// The file on the host (its real path).
    pub file: PathBuf,
    pub what: What,
    /// What is read-only in the sandbox: the file, or its folder.
    pub dest: PathBuf,
    /// `dest` is the file's folder.
    pub folder: bool,
}

/// How the sandbox could change a loaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Write (or replace) the file itself.
    File,
    /// Rename or replace this folder on the way to it.
    Folder(PathBuf),
    /// Replace this symbolic link followed on the way to it.
    Link(PathBuf),
}

/// Why a loaded file the sandbox could reach cannot be guarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unguarded {
    /// A hook's program (or its interpreter).
    Program,
    /// A symbolic link on the way, as the file's real path.
    Link(PathBuf),
    /// The bind is the file itself.
    BoundItself,
    /// The file has this many names.
    HardLinks(u64),
    Missing,
}

/// A launch refused: the sandbox could change a file a later run loads.
#[derive(Debug, thiserror::Error)]
#[error("the sandbox could {}, through {bind}; {}", self.reach_text(), self.fix())]
pub struct Exposed {
    /// The loaded file, as the run named it.
    pub file: PathBuf,
    /// And its real path.
    pub real: PathBuf,
    pub what: What,
    pub reach: Reach,
    /// The bind that exposes it, described.
    pub bind: String,
    pub why: Unguarded,
}

impl Exposed {
    fn reach_text(&self) -> String {
        let file = self.file.display();
        let what = &self.what;
        match &self.reach {
            Reach::File if self.real != self.file => {
                format!("write {} ({what}, named {file})", self.real.display())
            }
            Reach::File => format!("write {file} ({what})"),
            Reach::Folder(d) => format!(
                "rename or replace {}, a folder on the way to {file} ({what})",
                d.display()
            ),
            Reach::Link(l) => format!(
                "replace {}, a symbolic link on the way to {file} ({what})",
                l.display()
            ),
        }
    }

    fn fix(&self) -> String {
        match &self.why {
            Unguarded::Program => "a hook never runs a program the sandbox could have changed: keep it outside the folders the sandbox can write, or bind the folder that holds it read-only".into(),
            Unguarded::Link(real) => format!(
                "a link cannot be kept read-only in the sandbox: name the file by its real path, {}, or keep the link outside the folders the sandbox can write",
                real.display()
            ),
            Unguarded::BoundItself => "bind the folder that holds it instead (antimony keeps the files a run loads read-only in its sandbox), or bind the file read-only".into(),
            Unguarded::HardLinks(n) => format!(
                "it has {n} names (hard links), and the sandbox could write it through another: keep a copy with a single name"
            ),
            Unguarded::Missing => "it does not exist, so the sandbox could create it: keep it outside the folders the sandbox can write".into(),
        }
    }
}

/// A bind through which the sandbox writes to the host.
struct Writable<'a> {
    mount: &'a Mount,
    /// Its source as written.
    source: &'a Path,
    /// And as the kernel resolves it.
    real: PathBuf,
}

impl<'a> Writable<'a> {
    fn of(fs: &dyn HostView, m: &'a Mount) -> Option<Writable<'a>> {
        match &m.op {
            // The base layout's writable binds are device nodes and sockets.
            Op::Bind {
                source,
                mode: BindMode::Rw | BindMode::Dev,
                ..
            } if m.origin != Origin::Base => Some(Writable {
                mount: m,
                source,
                real: real_path(fs, source),
            }),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        let Op::Bind { mode, .. } = &self.mount.op else {
            unreachable!("a writable bind")
        };
        let source = self.source.display();
        let mut d = match self.mount.origin {
            Origin::Home => format!("the persistent home {source}"),
            Origin::CommandLine => format!("the bind --{} {source}", mode.key()),
            Origin::Forward => format!("the forwarded argument {source} (forward = \"rw\")"),
            _ => format!("the bind {} {source} ([files])", mode.key()),
        };
        if self.mount.dest != self.source {
            d.push_str(&format!(
                " (at {} in the sandbox)",
                self.mount.dest.display()
            ));
        }
        d
    }
}

/// An entry on the way to a loaded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    File,
    Folder,
    Link,
}

/// The way the kernel takes to a file: every entry it looks up, each as a
/// real path (no link in it), and the file's real path.
#[derive(Debug, Default, PartialEq, Eq)]
struct Way {
    /// The file's real path (as far as it exists, the rest as written).
    file: PathBuf,
    exists: bool,
    /// The links followed, each where it lies (its folder's real path and
    /// its name).
    links: Vec<PathBuf>,
}

impl Way {
    /// Resolves `path` one component at a time, as path lookup does, with
    /// one `lstat` per component. Where something is missing (or cannot be
    /// looked at), the rest is taken as written.
    fn of(fs: &dyn HostView, path: &Path) -> Way {
        let mut way = Way::default();
        let mut cur = PathBuf::from("/");
        let mut exists = true;
        // The components still to walk, the next one last.
        let mut todo: Vec<OsString> = Vec::new();
        let push = |todo: &mut Vec<OsString>, p: &Path| {
            todo.extend(p.components().rev().map(|c| c.as_os_str().to_os_string()));
        };
        push(&mut todo, path);
        while let Some(part) = todo.pop() {
            match Path::new(&part).components().next() {
                Some(Component::RootDir) => cur = PathBuf::from("/"),
                Some(Component::ParentDir) => {
                    cur.pop();
                }
                Some(Component::Normal(name)) => {
                    let next = cur.join(name);
                    if exists {
                        match fs.lstat(&next) {
                            Ok(m) if m.kind == Kind::Symlink => {
                                // The kernel gives up after 40 links (ELOOP).
                                match fs.read_link(&next) {
                                    Ok(target) if way.links.len() < 40 => {
                                        way.links.push(next);
                                        push(&mut todo, &target);
                                        continue;
                                    }
                                    _ => exists = false,
                                }
                            }
                            Ok(_) => {}
                            Err(_) => exists = false,
                        }
                    }
                    cur = next;
                }
                Some(Component::CurDir | Component::Prefix(_)) | None => {}
            }
        }
        way.file = cur;
        way.exists = exists;
        way
    }

    /// Every entry on the way: the file, the links, and the folders that
    /// hold them.
    fn entries(&self) -> Vec<(PathBuf, Entry)> {
        let mut out: Vec<(PathBuf, Entry)> = Vec::new();
        let mut seen: HashSet<&Path> = HashSet::new();
        for (p, kind) in std::iter::once((&self.file, Entry::File))
            .chain(self.links.iter().map(|l| (l, Entry::Link)))
        {
            if seen.insert(p) {
                out.push((p.clone(), kind));
            }
            for a in p.ancestors().skip(1) {
                if a.parent().is_none() || !seen.insert(a) {
                    continue;
                }
                out.push((a.to_path_buf(), Entry::Folder));
            }
        }
        out
    }
}

/// Mounts that cover what is beneath them in the sandbox (an optional bind
/// may not happen: it covers nothing for sure).
fn covers(op: &Op) -> bool {
    match op {
        Op::Bind { optional, .. } => !optional,
        Op::Tmpfs { .. }
        | Op::Proc
        | Op::Devpts
        | Op::Overlay { .. }
        | Op::Mask
        | Op::Pin
        | Op::ReadOnly => true,
        Op::Symlink { .. } | Op::Dir { .. } | Op::File { .. } => false,
    }
}

/// Checks each loaded file against the writable binds of `mounts` (the
/// finished list). Returns the mounts that guard the files within reach,
/// and what they guard; or the first file that cannot be guarded. `loaded`
/// is only called when there is a writable bind.
pub fn check(
    fs: &dyn HostView,
    mounts: &[Mount],
    loaded: impl FnOnce() -> Vec<Loaded>,
) -> Result<(Vec<Mount>, Vec<Guarded>), Box<Exposed>> {
    let writable: Vec<Writable<'_>> = mounts.iter().filter_map(|m| Writable::of(fs, m)).collect();
    if writable.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut points: PathMap<&Path, ()> = PathMap::default();
    for m in mounts.iter().filter(|m| covers(&m.op)) {
        points.insert(&m.dest, ());
    }
    let mut extra: Vec<Mount> = Vec::new();
    let mut guarded = Vec::new();
    // Each guarding mount's place, and its index in `extra`.
    let mut placed: PathMap<PathBuf, usize> = PathMap::default();
    for l in with_interpreters(fs, loaded()) {
        let way = Way::of(fs, &l.path);
        let entries = way.entries();
        for w in &writable {
            for (entry, kind) in &entries {
                let Ok(rest) = entry.strip_prefix(&w.real) else {
                    continue;
                };
                let refuse = |why: Unguarded| {
                    Box::new(Exposed {
                        file: l.path.clone(),
                        real: way.file.clone(),
                        what: l.what.clone(),
                        reach: match kind {
                            Entry::File => Reach::File,
                            Entry::Folder => Reach::Folder(entry.clone()),
                            Entry::Link => Reach::Link(entry.clone()),
                        },
                        bind: w.describe(),
                        why,
                    })
                };
                if rest.as_os_str().is_empty() {
                    // The bind's own root is a mount point; only a file
                    // bound itself is within reach there.
                    if *kind == Entry::File && l.what.guardable() {
                        return Err(refuse(Unguarded::BoundItself));
                    }
                    if *kind == Entry::Folder {
                        continue;
                    }
                }
                let dest = w.mount.dest.join(rest);
                // Something mounted on it, or between it and the bind,
                // keeps it from the bind's reach.
                let covered = dest
                    .ancestors()
                    .take_while(|a| *a != w.mount.dest)
                    .any(|a| points.contains_key(a));
                if covered && !rest.as_os_str().is_empty() {
                    continue;
                }
                let (dest, op) = match kind {
                    Entry::File | Entry::Link if !l.what.guardable() => {
                        return Err(refuse(Unguarded::Program));
                    }
                    Entry::Link => return Err(refuse(Unguarded::Link(way.file.clone()))),
                    Entry::File if !way.exists => return Err(refuse(Unguarded::Missing)),
                    Entry::File => {
                        let nlink = fs.stat(entry).map_or(1, |m| m.nlink);
                        if nlink > 1 {
                            return Err(refuse(Unguarded::HardLinks(nlink)));
                        }
                        // A profile's folder holds the project's other
                        // profiles, which a later run loads: read-only with
                        // it, unless it is the bind itself (the project).
                        let (dest, folder) = match dest.parent() {
                            Some(f) if l.what != What::Launcher && f != w.mount.dest => {
                                (f.to_path_buf(), true)
                            }
                            _ => (dest, false),
                        };
                        guarded.push(Guarded {
                            file: entry.clone(),
                            what: l.what.clone(),
                            dest: dest.clone(),
                            folder,
                        });
                        (dest, Op::ReadOnly)
                    }
                    // Beneath a folder bound read-only (the file is
                    // covered), a program is as safe as the file.
                    Entry::Folder => (dest, Op::Pin),
                };
                match placed.get(&dest) {
                    // Bound read-only over itself, a folder is pinned too.
                    Some(&i) if op == Op::ReadOnly => extra[i].op = Op::ReadOnly,
                    Some(_) => {}
                    None => {
                        placed.insert(dest.clone(), extra.len());
                        extra.push(Mount {
                            dest,
                            op,
                            origin: Origin::Protect,
                        });
                    }
                }
            }
        }
    }
    Ok((extra, guarded))
}

/// The loaded files, and the `#!` interpreter of each hook program (the
/// kernel runs it with the program as its argument), to four levels as
/// the kernel allows.
fn with_interpreters(fs: &dyn HostView, loaded: Vec<Loaded>) -> Vec<Loaded> {
    let mut out = Vec::with_capacity(loaded.len());
    let mut seen: HashSet<PathBuf> = HashSet::new();
    for l in loaded {
        if !seen.insert(l.path.clone()) {
            continue;
        }
        if let What::Program(hook) = &l.what {
            let mut program = l.path.clone();
            for _ in 0..4 {
                match interpreter(fs, &program) {
                    Some(i) if seen.insert(i.clone()) => {
                        out.push(Loaded {
                            path: i.clone(),
                            what: What::Interpreter(hook.clone()),
                        });
                        program = i;
                    }
                    _ => break,
                }
            }
        }
        out.push(l);
    }
    out
}

/// The interpreter a `#!` line names (its first word).
fn interpreter(fs: &dyn HostView, program: &Path) -> Option<PathBuf> {
    let mut head = [0u8; 256];
    let n = fs.read_head(program, &mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    let word = line
        .split(|&b| b == b' ' || b == b'\t')
        .find(|w| !w.is_empty())?;
    let path = PathBuf::from(OsStr::from_bytes(word));
    path.is_absolute().then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::RealHost;

    /// A temporary folder, removed on drop.
    struct Temp(PathBuf);

    impl Temp {
        fn new(name: &str) -> Temp {
            let dir =
                std::env::temp_dir().join(format!("antimony-guard-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            // The real path: the tests compare real paths.
            Temp(std::fs::canonicalize(&dir).unwrap())
        }

        fn file(&self, rel: &str, text: &str) -> PathBuf {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
            p
        }
    }

    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn bind(source: &Path, dest: &Path, mode: BindMode, origin: Origin) -> Mount {
        Mount {
            dest: dest.to_path_buf(),
            op: Op::Bind {
                source: source.to_path_buf(),
                mode,
                optional: false,
            },
            origin,
        }
    }

    fn profile(path: &Path) -> Vec<Loaded> {
        vec![Loaded {
            path: path.to_path_buf(),
            what: What::Profile,
        }]
    }

    fn ops(mounts: &[Mount]) -> Vec<(PathBuf, Op)> {
        mounts
            .iter()
            .map(|m| (m.dest.clone(), m.op.clone()))
            .collect()
    }

    #[test]
    fn without_a_writable_bind_nothing_is_looked_at() {
        let ro = bind(
            Path::new("/srv"),
            Path::new("/srv"),
            BindMode::Ro,
            Origin::Profile,
        );
        let (extra, guarded) =
            check(&RealHost, &[ro], || panic!("loaded files asked for")).unwrap();
        assert!(extra.is_empty() && guarded.is_empty());
    }

    #[test]
    fn a_profile_within_reach_is_read_only_and_its_way_pinned() {
        let t = Temp::new("reach");
        let file = t.file("proj/sub/build.toml", "");
        let top = t.file("proj/antimony.toml", "");
        let deeper = t.file("proj/sub/dir/x.toml", "");
        // Bound elsewhere in the sandbox: the guards follow the bind.
        let rw = |p: &Path, at: &str| bind(p, Path::new(at), BindMode::Rw, Origin::CommandLine);
        let (extra, guarded) = check(&RealHost, &[rw(&t.0, "/w")], || {
            [deeper.clone(), file.clone()]
                .iter()
                .flat_map(|f| profile(f))
                .collect()
        })
        .unwrap();
        // The profile's folder is read-only with it (a pin on the way to
        // another loaded file becomes read-only too).
        assert_eq!(
            ops(&extra),
            [
                (PathBuf::from("/w/proj/sub/dir"), Op::ReadOnly),
                (PathBuf::from("/w/proj/sub"), Op::ReadOnly),
                (PathBuf::from("/w/proj"), Op::Pin),
            ]
        );
        let files: Vec<_> = guarded
            .iter()
            .map(|g| (&g.file, g.dest.as_path()))
            .collect();
        assert_eq!(
            files,
            [
                (&deeper, Path::new("/w/proj/sub/dir")),
                (&file, Path::new("/w/proj/sub"))
            ]
        );
        // At the top of the bind (the project), only the file.
        let proj = t.0.join("proj");
        let (extra, _) = check(&RealHost, &[rw(&proj, "/p")], || profile(&top)).unwrap();
        assert_eq!(
            ops(&extra),
            [(PathBuf::from("/p/antimony.toml"), Op::ReadOnly)]
        );
    }

    #[test]
    fn a_mount_on_the_way_keeps_what_is_beneath_out_of_reach() {
        let t = Temp::new("covered");
        let file = t.file("proj/.antimony/build.toml", "");
        let program = t.file("proj/.antimony/hook", "");
        let rw = bind(&t.0, &t.0, BindMode::Rw, Origin::CommandLine);
        let dot = t.0.join("proj/.antimony");
        let ro = bind(&dot, &dot, BindMode::Ro, Origin::Profile);
        let loaded = || {
            let mut l = profile(&file);
            l.push(Loaded {
                path: program.clone(),
                what: What::Program("pre-hook `hook`".into()),
            });
            l
        };
        let (extra, guarded) = check(&RealHost, &[rw, ro], loaded).unwrap();
        // Only the folder above the read-only bind is left to pin.
        assert_eq!(ops(&extra), [(t.0.join("proj"), Op::Pin)]);
        assert!(guarded.is_empty());
    }

    #[test]
    fn a_program_within_reach_is_refused() {
        let t = Temp::new("program");
        let program = t.file("bin/hook", "#!/bin/sh\n");
        let rw = bind(&t.0, &t.0, BindMode::Rw, Origin::Profile);
        let e = check(&RealHost, &[rw], || {
            vec![Loaded {
                path: program.clone(),
                what: What::Program("pre-hook `hook`".into()),
            }]
        })
        .unwrap_err();
        assert_eq!(
            (e.reach.clone(), e.why.clone()),
            (Reach::File, Unguarded::Program)
        );
        let text = e.to_string();
        assert!(text.starts_with(&format!(
            "the sandbox could write {} (the program of pre-hook `hook`), through the bind rw {} ([files]); a hook never runs",
            program.display(),
            t.0.display()
        )), "{text}");
    }

    #[test]
    fn an_interpreter_within_reach_is_refused() {
        let t = Temp::new("interp");
        let outside = Temp::new("interp-out");
        let interp = t.file("venv/python", "");
        let program = outside.file("hook", &format!("#!{} -u\n", interp.display()));
        let rw = bind(&t.0, &t.0, BindMode::Rw, Origin::Profile);
        let e = check(&RealHost, &[rw], || {
            vec![Loaded {
                path: program.clone(),
                what: What::Program("pre-hook `hook`".into()),
            }]
        })
        .unwrap_err();
        assert_eq!(e.file, interp);
        assert_eq!(e.what, What::Interpreter("pre-hook `hook`".into()));
    }

    #[test]
    fn links_on_the_way_are_followed_and_refused_within_reach() {
        let t = Temp::new("links");
        let file = t.file("real/p.toml", "");
        std::fs::create_dir_all(t.0.join("w")).unwrap();
        std::os::unix::fs::symlink("../real", t.0.join("w/l")).unwrap();
        std::os::unix::fs::symlink("l", t.0.join("w/l2")).unwrap();
        // `..` after a link leaves the folder the link led to.
        let way = Way::of(&RealHost, &t.0.join("w/./l/../real/p.toml"));
        assert_eq!((&way.file, way.exists), (&file, true));
        assert_eq!(way.links, [t.0.join("w/l")]);
        let named = t.0.join("w/l2/p.toml");
        let way = Way::of(&RealHost, &named);
        assert_eq!((&way.file, way.exists), (&file, true));
        assert_eq!(way.links, [t.0.join("w/l2"), t.0.join("w/l")]);
        // The link lies in the writable folder; the file does not.
        let w = t.0.join("w");
        let rw = bind(&w, &w, BindMode::Rw, Origin::CommandLine);
        let e = check(&RealHost, &[rw], || profile(&named)).unwrap_err();
        assert_eq!(e.reach, Reach::Link(t.0.join("w/l2")));
        assert_eq!(e.why, Unguarded::Link(file.clone()));
        // Named by its real path, it is out of reach.
        let rw = bind(&w, &w, BindMode::Rw, Origin::CommandLine);
        assert_eq!(
            check(&RealHost, &[rw], || profile(&file)).unwrap(),
            (vec![], vec![])
        );
    }

    #[test]
    fn what_cannot_be_guarded_is_refused() {
        let t = Temp::new("unguarded");
        let file = t.file("p.toml", "");
        let rw = |p: &Path| bind(p, p, BindMode::Rw, Origin::CommandLine);
        let e = check(&RealHost, &[rw(&file)], || profile(&file)).unwrap_err();
        assert_eq!(e.why, Unguarded::BoundItself);
        std::fs::hard_link(&file, t.0.join("q.toml")).unwrap();
        let e = check(&RealHost, &[rw(&t.0)], || profile(&file)).unwrap_err();
        assert_eq!(e.why, Unguarded::HardLinks(2));
        let missing = t.0.join("gone.toml");
        let e = check(&RealHost, &[rw(&t.0)], || profile(&missing)).unwrap_err();
        assert_eq!(e.why, Unguarded::Missing);
    }

    #[test]
    fn interpreters_are_read_from_the_first_line() {
        let t = Temp::new("shebang");
        let script = t.file("s", "#! /opt/py/bin/python3 -u\nprint()\n");
        assert_eq!(
            interpreter(&RealHost, &script),
            Some(PathBuf::from("/opt/py/bin/python3"))
        );
        let script = t.file("s", "print()\n");
        assert_eq!(interpreter(&RealHost, &script), None);
    }
}
