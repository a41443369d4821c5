//! Learning what a program needs: `antimony learn` runs it in a recording
//! sandbox and drafts a profile from what it named; `run --explain` reads
//! the same record of an ordinary run and says which paths the program
//! tried that the profile hides.
//!
//! - `record`: the recorder (seccomp user notification; why, there);
//! - `draft`: the recording sandbox's profile, and the draft drawn from a
//!   record;
//! - `explain`: the denial report;
//! - `bus`: what the D-Bus proxy's log says the program asked for.
//!
//! It uses `plan` (the recording filter, what a sandbox shows), `profile`
//! and `host`; `pipeline` runs the recorder, `commands` the rest.

pub mod bus;
pub mod draft;
pub mod explain;
pub mod record;

pub use record::{Recorder, Recording, Use};

use std::path::{Path, PathBuf};

/// Paths that say nothing about what a profile should grant: the
/// sandbox's own `/proc`, terminals, private `/tmp` (but the X server's
/// sockets), and the program's private runtime folder.
pub fn uninteresting(p: &Path, runtime_dir: Option<&Path>) -> bool {
    const SKIP: &[&str] = &[
        "/proc",
        "/dev/pts",
        "/dev/ptmx",
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
        "/dev/shm",
        "/dev/fd",
        "/dev/stdin",
        "/dev/stdout",
        "/dev/stderr",
        "/sys/fs/cgroup",
        "/",
    ];
    if SKIP.iter().any(|s| p == Path::new(s)) {
        return true;
    }
    if ["/proc", "/dev/pts", "/dev/shm", "/dev/fd"]
        .iter()
        .any(|s| p.starts_with(s))
    {
        return true;
    }
    if p.starts_with("/tmp") && !p.starts_with("/tmp/.X11-unix/") {
        return true;
    }
    if p.starts_with("/var/tmp") {
        return true;
    }
    // The runtime folder's own files (the bus socket antimony binds is
    // the proxy's; the desktop's sockets are the fragments').
    if let Some(r) = runtime_dir {
        if p == r || p.starts_with(r.join("bus")) || p.starts_with(r.join("dconf")) {
            return true;
        }
    }
    false
}

/// A folder that holds what others grant (`/etc`, `~/.config`…): looking
/// it up says nothing, and granting it would grant far too much.
pub fn container(p: &Path, home: &Path) -> bool {
    const SYSTEM: &[&str] = &[
        "/etc",
        "/opt",
        "/srv",
        "/var",
        "/var/lib",
        "/var/cache",
        "/usr",
        "/usr/local",
        "/run",
        "/sys",
        "/dev",
        "/home",
        "/media",
        "/mnt",
        "/tmp",
    ];
    if SYSTEM.iter().any(|s| p == Path::new(s)) {
        return true;
    }
    p == home
        || [
            ".config",
            ".local",
            ".local/share",
            ".local/state",
            ".cache",
        ]
        .iter()
        .any(|s| p == home.join(s))
        || home.starts_with(p)
}

/// The folder a path is granted by: folders under `/etc`, `/opt`,
/// `/srv`, `/var/lib`, `/var/cache`, `/usr/local` and the home's
/// `.config`, `.local/share`, `.cache` are granted whole (a program that
/// reads one file of its configuration folder reads the others on another
/// day); `/dev/snd` and `/dev/input` too; anything else as it is. Never
/// the home itself, nor `/`.
pub fn collapse(p: &Path, home: &Path) -> PathBuf {
    let keep = |base: &Path, depth: usize| -> Option<PathBuf> {
        let rest = p.strip_prefix(base).ok()?;
        let mut out = base.to_path_buf();
        for c in rest.components().take(depth) {
            out.push(c);
        }
        (out != base).then_some(out)
    };
    if let Ok(rest) = p.strip_prefix(home) {
        let first = rest.components().next();
        let dot = first.is_some_and(|c| c.as_os_str().to_string_lossy().starts_with('.'));
        for sub in [".config", ".local/share", ".cache", ".local/state"] {
            if let Some(k) = keep(&home.join(sub), 1) {
                return k;
            }
        }
        if dot {
            return keep(home, 1).unwrap_or_else(|| p.to_path_buf());
        }
        return p.to_path_buf();
    }
    for (base, depth) in [
        ("/etc", 1),
        ("/opt", 1),
        ("/srv", 1),
        ("/var/lib", 1),
        ("/var/cache", 1),
        ("/usr/local", 2),
        ("/dev/snd", 0),
        ("/dev/input", 0),
        ("/sys/devices/system", 1),
        ("/sys", 2),
        ("/run", 1),
    ] {
        if depth == 0 && p.starts_with(base) {
            return PathBuf::from(base);
        }
        if let Some(k) = keep(Path::new(base), depth) {
            return k;
        }
    }
    p.to_path_buf()
}

/// The shortest list covering `paths`: a path under another is dropped.
pub fn outermost(mut paths: Vec<PathBuf>) -> Vec<PathBuf> {
    paths.sort();
    paths.dedup();
    let mut out: Vec<PathBuf> = Vec::new();
    for p in paths {
        if !out.iter().any(|o| p.starts_with(o)) {
            out.push(p);
        }
    }
    out
}

/// The host path with the links of its folders resolved (`/bin/sh` is
/// `/usr/bin/sh` where `/bin` links to `usr/bin`, as in every sandbox);
/// the last component is kept as it is (`/etc/localtime`, a link to the
/// zone, is a path a sandbox has or has not).
pub fn real_parent(p: &Path) -> PathBuf {
    match (p.parent(), p.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .map(|d| d.join(name))
            .unwrap_or_else(|_| p.to_path_buf()),
        _ => p.to_path_buf(),
    }
}

/// Whether the sandbox of `plan` shows the host's `p`.
pub fn shown(plan: &crate::plan::Plan, p: &Path) -> bool {
    plan.visible(p)
        || plan.visible(&real_parent(p))
        // Its own file there (`/etc/passwd`), link or folder.
        || plan
            .mounts
            .iter()
            .any(|m| m.dest == p && !matches!(m.op, crate::plan::Op::Mask | crate::plan::Op::Pin))
}

/// A host path as a profile writes it: `~/x` under the home.
pub fn written(p: &Path, home: &Path) -> String {
    match p.strip_prefix(home) {
        Ok(rest) if !rest.as_os_str().is_empty() => format!("~/{}", rest.display()),
        _ => p.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapses_to_folders_but_never_the_home() {
        let home = Path::new("/home/u");
        let c = |p: &str| collapse(Path::new(p), home);
        assert_eq!(
            c("/etc/libreoffice/registry/main.xcd"),
            PathBuf::from("/etc/libreoffice")
        );
        assert_eq!(c("/etc/papersize"), PathBuf::from("/etc/papersize"));
        assert_eq!(
            c("/home/u/.config/xcalc/rc"),
            PathBuf::from("/home/u/.config/xcalc")
        );
        assert_eq!(c("/home/u/.xboardrc"), PathBuf::from("/home/u/.xboardrc"));
        assert_eq!(
            c("/home/u/.local/share/app/x/y"),
            PathBuf::from("/home/u/.local/share/app")
        );
        assert_eq!(c("/home/u"), PathBuf::from("/home/u"));
        assert_eq!(c("/dev/snd/pcmC0D0p"), PathBuf::from("/dev/snd"));
        assert_eq!(
            outermost(vec!["/etc/a/b".into(), "/etc/a".into(), "/etc/b".into()]),
            vec![PathBuf::from("/etc/a"), PathBuf::from("/etc/b")]
        );
        assert_eq!(written(Path::new("/home/u/.x"), home), "~/.x");
    }

    #[test]
    fn skips_what_says_nothing() {
        let r = Path::new("/run/user/1000");
        assert!(uninteresting(Path::new("/proc/self/maps"), Some(r)));
        assert!(uninteresting(Path::new("/tmp/foo"), Some(r)));
        assert!(!uninteresting(Path::new("/tmp/.X11-unix/X0"), Some(r)));
        assert!(!uninteresting(Path::new("/etc/libreoffice"), Some(r)));
    }
}
