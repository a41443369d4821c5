//! `[files] package_config`: the program's own configuration in `/etc`.
//!
//! Programs read `/etc/NAME` (GIMP's `/etc/gimp/2.0/menurc`, LibreOffice's
//! `/etc/libreoffice`), which the sandbox's `/etc` lacks. With the key, the
//! plan binds read-only:
//! - `/etc/NAME` for each NAME among the program's file name, the names of
//!   the links on the way to it (`/usr/bin/libreoffice` →
//!   `/usr/lib/libreoffice/program/soffice`) and the profile's name, where
//!   one exists;
//! - the top-level `/etc` folders that the Debian packages owning those
//!   files ship (`/var/lib/dpkg/info/PKG.list`, as dpkg records them).
//!
//! All of it is read through the plan's `HostView`, and only for a profile
//! that sets the key: dpkg's lists are read in order of how likely they are
//! to be the program's (the package named like the program first), until
//! every file on the way has an owner or every list has been read.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use crate::host::HostView;
use crate::host::view::Kind;

/// Where dpkg records which package ships which file.
pub const DPKG_INFO: &str = "/var/lib/dpkg/info";

/// `/etc` entries never bound for a package: secrets, and the identity
/// files the sandbox writes itself.
const NEVER: &[&str] = &[
    "shadow",
    "gshadow",
    "sudoers",
    "sudoers.d",
    "passwd",
    "group",
];

/// `/etc` folders many packages put a file in, which are the system's and
/// no program's own configuration (nor are drop-in folders, `NAME.d`,
/// unless NAME is the package's or the program's, as `/etc/chromium.d`):
/// a package's file there does not bring in the whole folder, with the
/// system's secrets in some (`/etc/ssh`, `/etc/ssl/private`).
const SHARED: &[&str] = &[
    "X11",
    "alternatives",
    "apparmor",
    "apt",
    "ca-certificates",
    "cron.daily",
    "cron.hourly",
    "cron.monthly",
    "cron.weekly",
    "dbus-1",
    "default",
    "dpkg",
    "init",
    "kernel",
    "logcheck",
    "menu",
    "menu-methods",
    "network",
    "pki",
    "polkit-1",
    "security",
    "selinux",
    "ssh",
    "ssl",
    "systemd",
    "udev",
    "xdg",
];

/// Top-level folders that merged-/usr systems make links into `/usr`: dpkg
/// may record a file under either name.
const USR_ALIASES: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// What `package_config` found for one program.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageConfig {
    /// The packages that ship the program or a link on the way to it.
    pub packages: Vec<String>,
    /// The `/etc` entries to bind read-only, sorted.
    pub paths: Vec<PathBuf>,
}

/// Finds the `/etc` configuration of `program` (a host path), run by the
/// profile `profile`.
pub fn find(fs: &dyn HostView, program: &Path, profile: &str) -> PackageConfig {
    let chain = link_chain(fs, program);
    let mut names: BTreeSet<String> = chain
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
        .collect();
    names.insert(profile.to_string());
    let mut paths = BTreeSet::new();
    for name in &names {
        let p = Path::new("/etc").join(name);
        if allowed(name) && fs.exists(&p) {
            paths.insert(p);
        }
    }
    let packages = owners(fs, &chain, &names);
    for (package, list) in &packages {
        for line in list.lines() {
            let Some(name) = line.strip_prefix("/etc/") else {
                continue;
            };
            let p = Path::new(line);
            let own = !SHARED.contains(&name)
                && name
                    .strip_suffix(".d")
                    .is_none_or(|stem| stem == package || names.contains(stem));
            if !name.contains('/') && own && allowed(name) && fs.is_dir(p) {
                paths.insert(p.to_path_buf());
            }
        }
    }
    PackageConfig {
        packages: packages.into_iter().map(|(name, _)| name).collect(),
        paths: paths.into_iter().collect(),
    }
}

/// A name `/etc/NAME` may be bound by.
fn allowed(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !NEVER.contains(&name)
}

/// The program, each link on the way to it, and where it really is.
fn link_chain(fs: &dyn HostView, program: &Path) -> Vec<PathBuf> {
    let mut chain = Vec::new();
    let mut cur = normalize(program);
    // As many hops as the kernel follows.
    for _ in 0..40 {
        chain.push(cur.clone());
        if !fs.lstat(&cur).is_ok_and(|s| s.kind == Kind::Symlink) {
            break;
        }
        let Ok(target) = fs.read_link(&cur) else {
            break;
        };
        let dir = cur.parent().unwrap_or(Path::new("/"));
        let dir = fs.canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        cur = normalize(&dir.join(target));
    }
    if let Ok(real) = fs.canonicalize(program) {
        if !chain.contains(&real) {
            chain.push(real);
        }
    }
    chain
}

/// `path` with `.` and `..` taken away as written (the folders on the way
/// are already real).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// The names dpkg may record `path` by: as it is, and across the
/// merged-/usr links (`/usr/bin/x` and `/bin/x`).
fn recorded_as(path: &Path) -> Vec<String> {
    let written = path.to_string_lossy().into_owned();
    let top = |rest: &str| USR_ALIASES.contains(&rest.split('/').next().unwrap_or(rest));
    let other = match written.strip_prefix("/usr/") {
        Some(rest) if top(rest) => Some(format!("/{rest}")),
        Some(_) => None,
        None => written
            .strip_prefix('/')
            .filter(|rest| top(rest))
            .map(|rest| format!("/usr/{rest}")),
    };
    let mut out = vec![written];
    out.extend(other);
    out
}

/// The packages that ship a file of `chain`, with their file lists: dpkg's
/// lists read in the order of `likely`, until each file has an owner.
fn owners(fs: &dyn HostView, chain: &[PathBuf], names: &BTreeSet<String>) -> Vec<(String, String)> {
    let Ok(entries) = fs.read_dir(Path::new(DPKG_INFO)) else {
        return Vec::new();
    };
    let mut lists: Vec<(u8, String, String)> = entries
        .iter()
        .filter_map(|e| {
            let file = e.to_str()?;
            let stem = file.strip_suffix(".list")?;
            // `PKG:ARCH.list` for a package of several architectures.
            let package = stem.split(':').next().unwrap_or(stem);
            Some((
                likely(package, names),
                package.to_string(),
                file.to_string(),
            ))
        })
        .collect();
    lists.sort();
    // No package ships the links of update-alternatives (`/usr/bin/convert`
    // → `/etc/alternatives/convert` → …): reading every list would not find
    // an owner for them.
    let alternatives = Path::new("/etc/alternatives");
    let mut wanted: Vec<Vec<String>> = chain
        .iter()
        .filter(|p| {
            !p.starts_with(alternatives)
                && !fs.read_link(p).is_ok_and(|t| t.starts_with(alternatives))
        })
        .map(|p| recorded_as(p))
        .collect();
    let mut found = Vec::new();
    for (_, package, file) in lists {
        if wanted.is_empty() {
            break;
        }
        let Ok(bytes) = fs.read(&Path::new(DPKG_INFO).join(&file)) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let before = wanted.len();
        wanted.retain(|names| !text.lines().any(|l| names.iter().any(|n| n == l)));
        if wanted.len() < before && !found.iter().any(|(p, _)| *p == package) {
            found.push((package, text));
        }
    }
    found.sort();
    found
}

/// How likely a package is to ship the program, 0 first: named like it,
/// then named after it (`libreoffice-core`), then the others.
fn likely(package: &str, names: &BTreeSet<String>) -> u8 {
    if names.contains(package) {
        0
    } else if names.iter().any(|n| {
        package
            .strip_prefix(n.as_str())
            .is_some_and(|rest| rest.starts_with('-'))
    }) {
        1
    } else {
        2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::view::fake::FakeHost;

    /// dpkg's list for a package: each path and the folders on its way,
    /// as dpkg writes them.
    fn list(fs: &mut FakeHost, package: &str, paths: &[&str]) {
        let mut lines = BTreeSet::new();
        lines.insert("/.".to_string());
        for p in paths {
            let mut cur = PathBuf::from("/");
            for c in Path::new(p).components().skip(1) {
                cur.push(c);
                lines.insert(cur.display().to_string());
            }
        }
        let text: String = lines.into_iter().map(|l| l + "\n").collect();
        fs.file(format!("{DPKG_INFO}/{package}.list"), 0o644, &text);
    }

    fn office() -> FakeHost {
        let mut fs = FakeHost::new();
        fs.file("/usr/lib/libreoffice/program/soffice", 0o755, "")
            .link("/usr/bin/libreoffice", "../lib/libreoffice/program/soffice")
            .file("/etc/libreoffice/registry/main.xcd", 0o644, "")
            .file("/etc/libreoffice/sofficerc", 0o644, "")
            .dir("/etc/bash_completion.d")
            .dir("/etc/soffice.d")
            .dir("/etc/ssh")
            .link("/bin", "usr/bin");
        list(
            &mut fs,
            "libreoffice-common",
            &[
                "/usr/bin/libreoffice",
                "/etc/libreoffice/sofficerc",
                "/etc/bash_completion.d/libreoffice",
                "/etc/ssh/ssh_config.d/libreoffice",
            ],
        );
        list(
            &mut fs,
            "libreoffice-core:amd64",
            &[
                "/usr/lib/libreoffice/program/soffice",
                "/etc/libreoffice/registry/main.xcd",
                "/etc/soffice.d/x",
            ],
        );
        list(
            &mut fs,
            "bash",
            &["/bin/bash", "/etc/bash.bashrc", "/etc/skel/.bashrc"],
        );
        fs
    }

    #[test]
    fn the_packages_on_the_way_to_the_program_give_their_etc_folders() {
        let fs = office();
        let found = find(&fs, Path::new("/usr/bin/libreoffice"), "office");
        assert_eq!(found.packages, ["libreoffice-common", "libreoffice-core"]);
        // Top-level folders that exist, not the files in /etc itself,
        // folders the package names but the host lacks, drop-in folders
        // or the system's; a drop-in folder named after the program.
        assert_eq!(
            found.paths,
            [
                PathBuf::from("/etc/libreoffice"),
                PathBuf::from("/etc/soffice.d")
            ]
        );
    }

    #[test]
    fn etc_name_by_program_link_and_profile_name() {
        let mut fs = FakeHost::new();
        fs.file("/usr/bin/gimp-2.10", 0o755, "")
            .link("/usr/bin/gimp", "gimp-2.10")
            .file("/etc/gimp/2.0/menurc", 0o644, "")
            .file("/etc/gimp-2.10", 0o644, "")
            .file("/etc/paint", 0o644, "")
            .file("/etc/shadow", 0o600, "");
        let found = find(&fs, Path::new("/usr/bin/gimp"), "paint");
        assert!(found.packages.is_empty());
        assert_eq!(
            found.paths,
            [
                PathBuf::from("/etc/gimp"),
                PathBuf::from("/etc/gimp-2.10"),
                PathBuf::from("/etc/paint")
            ]
        );
        // Never a secret, whatever the profile is called.
        assert!(
            find(&fs, Path::new("/usr/bin/gimp"), "shadow")
                .paths
                .iter()
                .all(|p| p != Path::new("/etc/shadow"))
        );
    }

    #[test]
    fn dpkg_may_record_the_program_across_the_usr_links() {
        let mut fs = office();
        fs.file("/usr/bin/bash", 0o755, "").dir("/etc/skel");
        let found = find(&fs, Path::new("/usr/bin/bash"), "shell");
        assert_eq!(found.packages, ["bash"]);
        assert_eq!(found.paths, [PathBuf::from("/etc/skel")]);
        assert_eq!(
            recorded_as(Path::new("/bin/bash")),
            ["/bin/bash", "/usr/bin/bash"]
        );
        assert_eq!(recorded_as(Path::new("/opt/x")), ["/opt/x"]);
    }

    #[test]
    fn alternatives_lead_to_the_package_of_the_program() {
        let mut fs = FakeHost::new();
        fs.file("/usr/bin/convert-im6.q16", 0o755, "")
            .link("/etc/alternatives/convert", "/usr/bin/convert-im6.q16")
            .link("/usr/bin/convert", "/etc/alternatives/convert")
            .dir("/etc/im6");
        list(
            &mut fs,
            "imagemagick-6.q16",
            &["/usr/bin/convert-im6.q16", "/etc/im6/x"],
        );
        let found = find(&fs, Path::new("/usr/bin/convert"), "convert");
        assert_eq!(found.packages, ["imagemagick-6.q16"]);
        assert_eq!(found.paths, [PathBuf::from("/etc/im6")]);
    }

    #[test]
    fn a_host_without_dpkg_or_config_gives_nothing() {
        let mut fs = FakeHost::new();
        fs.file("/usr/bin/tool", 0o755, "");
        assert_eq!(
            find(&fs, Path::new("/usr/bin/tool"), "tool"),
            PackageConfig::default()
        );
    }

    #[test]
    fn likely_packages_are_read_first() {
        let names: BTreeSet<String> = ["soffice".into(), "libreoffice".into()].into();
        assert_eq!(likely("libreoffice", &names), 0);
        assert_eq!(likely("libreoffice-core", &names), 1);
        assert_eq!(likely("libreofficekit", &names), 2);
    }
}
