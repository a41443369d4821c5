//! File forwarding: host files and folders that the program's arguments
//! name — a path, or a `file://` URI as a desktop entry's `%u`/`%U` passes
//! it — are made visible in the sandbox at the same path, just that file or
//! folder, read-only unless the profile (`[files] forward`) or `--forward`
//! says otherwise.
//!
//! Only what is plainly a file is forwarded: an argument that is not an
//! option (no leading `-`), names an existing regular file or folder (never
//! a device, socket or FIFO), and is not already visible at its place. Too
//! wide a folder (`/`, the home or a folder above it) and anything inside
//! antimony's own folders are not forwarded, with a warning: a click in a
//! file manager must not hand a sandbox the whole home.
//!
//! A single file is a bind of that file: an editor that saves by writing a
//! new file beside it and renaming it over the old one fails (the rename
//! crosses a mount point, EBUSY/EXDEV); forward the folder instead.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use crate::host::HostView;
use crate::host::view::Kind;
use crate::profile::{BindMode, ForwardMode};

/// The system's secrets, never forwarded even when named (root could
/// read them): what the base layout never binds either.
const SECRETS: &[&str] = &[
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/shadow-",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh",
    "/etc/ssl/private",
    "/etc/security/opasswd",
];

/// One argument whose file is forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// Its index in `argv`.
    pub arg: usize,
    /// The path the program will use: the argument's path made absolute
    /// (links on the way kept: they are the way the program goes).
    pub path: PathBuf,
    /// The file itself, links resolved: what is bound.
    pub source: PathBuf,
    pub mode: BindMode,
    /// A folder (else a file).
    pub folder: bool,
    /// The argument is a `file://` URI.
    pub uri: bool,
    /// The argument was relative (to antimony's working folder).
    pub relative: bool,
}

/// An argument that names a host file, before the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Named {
    path: PathBuf,
    uri: bool,
    relative: bool,
}

/// The path an argument names, if it names one: `file:///p` or
/// `file://localhost/p` (percent-decoded, query and fragment dropped), an
/// absolute path, or a relative one joined to `cwd`. Options (a leading
/// `-`) and other URIs name none.
fn named(arg: &OsStr, cwd: Option<&Path>) -> Option<Named> {
    let bytes = arg.as_bytes();
    if bytes.is_empty() || bytes[0] == b'-' {
        return None;
    }
    if let Some(rest) = bytes.strip_prefix(b"file://") {
        let rest = rest.strip_prefix(b"localhost").unwrap_or(rest);
        if rest.first() != Some(&b'/') {
            return None;
        }
        let end = rest
            .iter()
            .position(|&b| b == b'?' || b == b'#')
            .unwrap_or(rest.len());
        let path = percent_decode(&rest[..end])?;
        return Some(Named {
            path: normal(&PathBuf::from(OsString::from_vec(path)))?,
            uri: true,
            relative: false,
        });
    }
    // Another scheme (`https://…`): not a file.
    if let Some(colon) = bytes.iter().position(|&b| b == b':') {
        let scheme = &bytes[..colon];
        if !scheme.is_empty()
            && scheme[0].is_ascii_alphabetic()
            && scheme
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(b))
            && bytes[colon + 1..].starts_with(b"//")
        {
            return None;
        }
    }
    let p = Path::new(arg);
    if p.is_absolute() {
        return Some(Named {
            path: normal(p)?,
            uri: false,
            relative: false,
        });
    }
    Some(Named {
        path: normal(&cwd?.join(p))?,
        uri: false,
        relative: true,
    })
}

/// `p` without `.` parts and with `..` taken back lexically (the program
/// resolves it the same way from the same place); `None` if it climbs
/// above `/`.
fn normal(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(n) => out.push(n),
            Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    (!out.contains(&0)).then_some(out)
}

/// `file://` and `path`, percent-encoded where a URI needs it.
pub fn file_uri(path: &Path) -> OsString {
    let mut out = b"file://".to_vec();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    OsString::from_vec(out)
}

/// What the planner knows when it picks the forwards.
pub struct Context<'a> {
    pub fs: &'a dyn HostView,
    pub mode: ForwardMode,
    /// antimony's working folder, for relative arguments.
    pub cwd: Option<&'a Path>,
    pub home: &'a Path,
    /// The host's runtime folder (`$XDG_RUNTIME_DIR`): its sockets are the
    /// desktop's, never forwarded.
    pub runtime_dir: Option<&'a Path>,
    /// antimony's own folders, as written and as resolved.
    pub protected: &'a [(PathBuf, PathBuf)],
    /// Whether a path is already visible at its place with at least this
    /// mode (the sandbox's other mounts).
    pub visible: &'a dyn Fn(&Path, BindMode) -> bool,
}

/// The forwards for `argv` (its first element, the program, is never
/// one), and a warning for each file named that is not forwarded though
/// it exists.
pub fn pick(argv: &[OsString], cx: &Context) -> (Vec<Forward>, Vec<String>) {
    let mut forwards: Vec<Forward> = Vec::new();
    let mut warnings = Vec::new();
    let mode = match cx.mode {
        ForwardMode::Off => return (forwards, warnings),
        ForwardMode::Ro => BindMode::Ro,
        ForwardMode::Rw => BindMode::Rw,
    };
    for (i, arg) in argv.iter().enumerate().skip(1) {
        let Some(n) = named(arg, cx.cwd) else {
            continue;
        };
        let Ok(stat) = cx.fs.stat(&n.path) else {
            continue;
        };
        let folder = match stat.kind {
            Kind::File => false,
            Kind::Dir => true,
            _ => continue,
        };
        let Ok(source) = cx.fs.canonicalize(&n.path) else {
            continue;
        };
        let shown = n.path.display();
        // The kernel's own file systems are the sandbox's own there.
        if ["/proc", "/sys", "/dev"]
            .iter()
            .any(|k| n.path.starts_with(k) || source.starts_with(k))
        {
            continue;
        }
        if let Some(secret) = SECRETS.iter().find(|s| {
            n.path.starts_with(s)
                || source.starts_with(s)
                || (folder && Path::new(s).starts_with(&source))
        }) {
            warnings.push(format!(
                "{shown} is not forwarded to the sandbox: it is (or holds) {secret}, one of the system's secrets"
            ));
            continue;
        }
        if let Some(rt) = cx.runtime_dir {
            if n.path.starts_with(rt)
                || source.starts_with(rt)
                || (folder && rt.starts_with(&source))
            {
                warnings.push(format!(
                    "{shown} is not forwarded to the sandbox: it is (or holds) your runtime folder {}, with every socket of your desktop",
                    rt.display()
                ));
                continue;
            }
        }
        if folder && (cx.home.starts_with(&n.path) || cx.home.starts_with(&source)) {
            warnings.push(format!(
                "{shown} is not forwarded to the sandbox: it holds your whole home (name a folder inside it, or bind it with --ro)"
            ));
            continue;
        }
        if let Some((p, _)) = cx
            .protected
            .iter()
            .find(|(p, real)| n.path.starts_with(p) || source.starts_with(real))
        {
            warnings.push(format!(
                "{shown} is not forwarded to the sandbox: it is inside {}, one of antimony's own folders",
                p.display()
            ));
            continue;
        }
        if (cx.visible)(&n.path, mode) || forwards.iter().any(|f| f.path == n.path) {
            continue;
        }
        forwards.push(Forward {
            arg: i,
            path: n.path,
            source,
            mode,
            folder,
            uri: n.uri,
            relative: n.relative,
        });
    }
    (forwards, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::view::fake::FakeHost;

    fn n(arg: &str, cwd: Option<&str>) -> Option<(String, bool, bool)> {
        named(OsStr::new(arg), cwd.map(Path::new))
            .map(|n| (n.path.display().to_string(), n.uri, n.relative))
    }

    #[test]
    fn what_an_argument_names() {
        let s = |p: &str, uri, rel| Some((p.to_string(), uri, rel));
        assert_eq!(n("/a/b.pdf", None), s("/a/b.pdf", false, false));
        assert_eq!(n("/a/./c/../b.pdf", None), s("/a/b.pdf", false, false));
        assert_eq!(n("b.pdf", Some("/w")), s("/w/b.pdf", false, true));
        assert_eq!(n("../b.pdf", Some("/w/x")), s("/w/b.pdf", false, true));
        assert_eq!(n("b.pdf", None), None);
        assert_eq!(n("-x", Some("/w")), None);
        assert_eq!(n("--file=/a", Some("/w")), None);
        assert_eq!(n("", Some("/w")), None);
        assert_eq!(
            n("file:///home/u/My%20Doc.pdf", None),
            s("/home/u/My Doc.pdf", true, false)
        );
        assert_eq!(
            n("file://localhost/a%23b?x#y", None),
            s("/a#b", true, false)
        );
        assert_eq!(n("file://otherhost/a", None), None);
        assert_eq!(n("file:///a%00b", None), None);
        assert_eq!(n("file:///a%zz", None), None);
        assert_eq!(n("https://example.org/a", Some("/w")), None);
        assert_eq!(n("mailto:x@y", Some("/w")), s("/w/mailto:x@y", false, true));
        assert_eq!(n("/..", None), None);
    }

    #[test]
    fn uris_round_trip() {
        let p = Path::new("/run/antimony/files/1/My Doc #1%.pdf");
        let uri = file_uri(p);
        assert_eq!(
            uri,
            OsStr::new("file:///run/antimony/files/1/My%20Doc%20%231%25.pdf")
        );
        let back = named(&uri, None).unwrap();
        assert_eq!(back.path, p);
    }

    #[test]
    fn picks_files_and_folders_only() {
        let mut fs = FakeHost::new();
        fs.dir("/home/u/Documents")
            .file("/home/u/Documents/a.pdf", 0o644, "")
            .file("/home/u/Documents/b.pdf", 0o644, "")
            .dir("/home/u/.config/antimony")
            .file("/home/u/.config/antimony/x.toml", 0o644, "")
            .link("/home/u/link.pdf", "/home/u/Documents/b.pdf")
            .dir("/srv/shared")
            .dir("/run/user/1000/app")
            .file("/proc/cpuinfo", 0o444, "")
            .file("/etc/shadow", 0o640, "");
        let protected = vec![(
            PathBuf::from("/home/u/.config/antimony"),
            PathBuf::from("/home/u/.config/antimony"),
        )];
        let visible = |p: &Path, _: BindMode| p.starts_with("/usr");
        let cx = Context {
            fs: &fs,
            mode: ForwardMode::Ro,
            cwd: Some(Path::new("/home/u/Documents")),
            home: Path::new("/home/u"),
            runtime_dir: Some(Path::new("/run/user/1000")),
            protected: &protected,
            visible: &visible,
        };
        let argv: Vec<OsString> = [
            "/usr/bin/app",
            "a.pdf",
            "file:///home/u/link.pdf",
            "/home/u/missing.pdf",
            "--x",
            "/home/u",
            "/home",
            "/home/u/.config/antimony/x.toml",
            "/srv/shared",
            "/usr/bin/app",
            "/home/u/Documents/a.pdf",
            "/run/user/1000/app",
            "/proc/cpuinfo",
            "/etc/shadow",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let (f, w) = pick(&argv, &cx);
        let got: Vec<(usize, &str, &str, bool, bool, bool)> = f
            .iter()
            .map(|f| {
                (
                    f.arg,
                    f.path.to_str().unwrap(),
                    f.source.to_str().unwrap(),
                    f.folder,
                    f.uri,
                    f.relative,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    1,
                    "/home/u/Documents/a.pdf",
                    "/home/u/Documents/a.pdf",
                    false,
                    false,
                    true
                ),
                (
                    2,
                    "/home/u/link.pdf",
                    "/home/u/Documents/b.pdf",
                    false,
                    true,
                    false
                ),
                (8, "/srv/shared", "/srv/shared", true, false, false),
            ]
        );
        assert_eq!(w.len(), 5, "{w:?}");
        assert!(w[4].contains("one of the system's secrets"), "{w:?}");
        assert!(w[3].contains("your runtime folder"), "{w:?}");
        assert!(w[0].starts_with("/home/u is not forwarded"), "{w:?}");
        assert!(w[1].starts_with("/home is not forwarded"), "{w:?}");
        assert!(w[2].contains("one of antimony's own folders"), "{w:?}");
        let off = Context {
            mode: ForwardMode::Off,
            ..cx
        };
        assert!(pick(&argv, &off).0.is_empty());
    }
}
