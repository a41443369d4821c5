//! `antimony doctor`: what antimony relies on in the host, checked. The
//! facts are gathered by `probe` (sysctls, a user namespace actually made,
//! device nodes opened, programs looked up); judging them is pure (`judge`):
//! each check says ok / info / warning / failure, what it affects and the
//! one command that fixes it. A failure means `antimony run` cannot work
//! at all; a warning, that some profiles or features cannot.

pub mod probe;

use std::path::{Path, PathBuf};

use serde::Serialize;

/// Where the Debian package installs antimony, and the path its AppArmor
/// profile attaches to.
pub const INSTALLED: &str = "/usr/bin/antimony";
/// The AppArmor profile's file and name (the package's postinst loads it).
pub const APPARMOR_FILE: &str = "/etc/apparmor.d/antimony";
pub const APPARMOR_NAME: &str = "antimony";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Informational: nothing antimony needs, something a user may want.
    Info,
    /// Some profiles or features cannot work.
    Warning,
    /// `antimony run` cannot work.
    Failure,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Info => "info",
            Status::Warning => "warning",
            Status::Failure => "failure",
        }
    }
}

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable, for scripts.
    pub id: &'static str,
    pub status: Status,
    /// What was found (may hold text from the environment: escaped when
    /// printed).
    pub found: String,
    /// What depends on it.
    pub affects: &'static str,
    /// The one command that fixes it, when it is not ok.
    pub fix: Option<String>,
}

/// Every check, in the order they are printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Whether `antimony run` can work at all (no failure).
    pub can_run: bool,
    pub checks: Vec<Check>,
}

/// How a device node answered an open for reading and writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    Usable,
    Missing,
    NotCharDevice,
    /// open(2) failed with this errno.
    Refused(i32),
}

/// The cgroup antimony runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cgroup {
    /// /sys/fs/cgroup is not a cgroup v2 file system: v1, or hybrid (a
    /// v2 hierarchy mounted elsewhere, without the controllers).
    NotV2 { hybrid: Option<PathBuf> },
    /// No `0::` line in /proc/self/cgroup.
    NoOwnCgroup,
    /// The user may create cgroups under this one and move processes
    /// there; the controllers it offers.
    Delegated { path: PathBuf, controllers: String },
    /// The folder or its cgroup.procs is not writable by the user.
    NotDelegated { path: PathBuf },
}

/// `$XDG_RUNTIME_DIR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeDir {
    Unset,
    Missing(PathBuf),
    /// Not the user's, or open to others: (path, owner, mode).
    NotPrivate(PathBuf, u32, u32),
    Private(PathBuf),
}

/// antimony's own folder in it (`Host::runtime_base`), when it exists and
/// is refused: `antimony run` stops there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadBase {
    pub path: PathBuf,
    pub why: String,
}

/// A user namespace made for real: which step failed, with its errno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsernsFailure {
    pub step: &'static str,
    pub errno: i32,
}

/// Everything `judge` looks at.
#[derive(Debug, Clone)]
pub struct Facts {
    pub uid: u32,
    /// antimony's own program.
    pub exe: PathBuf,
    pub unprivileged_userns_clone: Option<u64>,
    pub max_user_namespaces: Option<u64>,
    pub apparmor_restrict: Option<u64>,
    /// AppArmor is enabled in the kernel (its securityfs folder exists).
    pub apparmor_enabled: bool,
    /// antimony's profile is loaded (None: the list could not be read).
    pub apparmor_loaded: Option<bool>,
    pub apparmor_file: bool,
    pub userns: Result<(), UsernsFailure>,
    pub landlock_abi: i32,
    /// seccomp filters are supported (SECCOMP_GET_ACTION_AVAIL answers).
    pub seccomp_filter: bool,
    pub cgroup: Cgroup,
    pub fuse: Device,
    pub tun: Device,
    pub dbus_proxy: Option<PathBuf>,
    pub pasta: Option<PathBuf>,
    pub gocryptfs: Option<PathBuf>,
    pub fusermount3: Option<PathBuf>,
    pub runtime_dir: RuntimeDir,
    pub bad_base: Option<BadBase>,
    /// The session bus's address, and whether a notification service
    /// answered on it.
    pub notifications: Option<(String, bool)>,
    /// The display servers found: ("Wayland", socket), ("X11", socket).
    pub displays: Vec<(&'static str, PathBuf)>,
}

fn check(
    id: &'static str,
    status: Status,
    found: impl Into<String>,
    affects: &'static str,
    fix: Option<String>,
) -> Check {
    Check {
        id,
        status,
        found: found.into(),
        affects,
        fix: if status == Status::Ok { None } else { fix },
    }
}

const EVERY_SANDBOX: &str = "every sandbox: antimony run cannot work without it";

/// The verdicts on the facts.
pub fn judge(f: &Facts) -> Report {
    let root = f.uid == 0;
    let mut checks = Vec::new();

    // User namespaces: the sysctls that forbid them, then the real thing.
    let mut forbidding: Option<String> = None;
    let mut found = Vec::new();
    let mut status = Status::Ok;
    if let Some(v) = f.max_user_namespaces {
        found.push(format!("user.max_user_namespaces = {v}"));
        if v == 0 {
            status = Status::Failure;
            forbidding = Some("sudo sysctl -w user.max_user_namespaces=15000".into());
        }
    }
    if let Some(v) = f.unprivileged_userns_clone {
        found.push(format!("kernel.unprivileged_userns_clone = {v}"));
        if v == 0 {
            if root {
                found.push("(ordinary users cannot make user namespaces; root can)".into());
            } else {
                status = Status::Failure;
                forbidding.get_or_insert_with(|| {
                    "sudo sysctl -w kernel.unprivileged_userns_clone=1".into()
                });
            }
        }
    }
    if found.is_empty() {
        found.push("no sysctl limits user namespaces".into());
    }
    checks.push(check(
        "userns-sysctls",
        status,
        found.join(", "),
        EVERY_SANDBOX,
        forbidding.clone(),
    ));

    // AppArmor's restriction (Ubuntu 23.10 and later): an ordinary user's
    // new user namespace gets no capabilities unless the program's
    // AppArmor profile grants `userns`.
    let restricted = f.apparmor_restrict.is_some_and(|v| v != 0);
    let on_profile_path = f.exe == Path::new(INSTALLED);
    let (status, found, fix) = match f.apparmor_restrict {
        None => (
            Status::Ok,
            "this kernel does not restrict user namespaces through AppArmor".to_string(),
            None,
        ),
        Some(0) => (
            Status::Ok,
            "kernel.apparmor_restrict_unprivileged_userns = 0".to_string(),
            None,
        ),
        Some(_) if root => (
            Status::Ok,
            "kernel.apparmor_restrict_unprivileged_userns = 1 (root is not concerned)".to_string(),
            None,
        ),
        Some(_) if f.apparmor_loaded == Some(true) && on_profile_path => (
            Status::Ok,
            format!(
                "kernel.apparmor_restrict_unprivileged_userns = 1; antimony's AppArmor profile is loaded and grants {INSTALLED} user namespaces"
            ),
            None,
        ),
        Some(_) if f.apparmor_loaded == Some(true) => (
            Status::Failure,
            format!(
                "kernel.apparmor_restrict_unprivileged_userns = 1; antimony's AppArmor profile grants user namespaces to {INSTALLED} only, and this antimony is {}",
                f.exe.display()
            ),
            Some(format!("{INSTALLED} doctor")),
        ),
        Some(_) if f.apparmor_file => (
            Status::Failure,
            format!(
                "kernel.apparmor_restrict_unprivileged_userns = 1 and antimony's AppArmor profile ({APPARMOR_FILE}) is not loaded"
            ),
            Some(format!("sudo apparmor_parser -r {APPARMOR_FILE}")),
        ),
        Some(_) => (
            Status::Failure,
            "kernel.apparmor_restrict_unprivileged_userns = 1 and antimony has no AppArmor profile (the Debian package installs one)".to_string(),
            Some("sudo apt install ./antimony_*.deb".to_string()),
        ),
    };
    if restricted && !root && status == Status::Failure {
        forbidding.get_or_insert_with(|| fix.clone().unwrap_or_default());
    }
    checks.push(check("apparmor-userns", status, found, EVERY_SANDBOX, fix));

    checks.push(match &f.userns {
        Ok(()) => check(
            "userns",
            Status::Ok,
            "a user namespace with its own mount namespace can be made (tried)",
            EVERY_SANDBOX,
            None,
        ),
        Err(e) => check(
            "userns",
            Status::Failure,
            format!(
                "a user namespace cannot be made: {} failed: {}",
                e.step,
                errno_text(e.errno)
            ),
            EVERY_SANDBOX,
            forbidding.or_else(|| Some("sudo sysctl -w user.max_user_namespaces=15000".into())),
        ),
    });

    let landlock_fix = Some(
        "add landlock to the kernel's lsm= boot parameter (GRUB_CMDLINE_LINUX in /etc/default/grub), then sudo update-grub and reboot".to_string(),
    );
    checks.push(match f.landlock_abi {
        0 => check(
            "landlock",
            Status::Warning,
            "Landlock is not enabled in this kernel",
            "sandboxes run without Landlock's file system rules; profiles with landlock = \"strict\" cannot run",
            landlock_fix,
        ),
        abi if abi < crate::plan::landlock::STRICT_ABI => check(
            "landlock",
            Status::Warning,
            format!("Landlock ABI {abi}"),
            "profiles with landlock = \"strict\" cannot run (they need ABI 6)",
            Some("a kernel of 6.12 or later".into()),
        ),
        abi => check(
            "landlock",
            Status::Ok,
            format!("Landlock ABI {abi}"),
            "the file system rules that mirror the sandbox's binds",
            None,
        ),
    });

    checks.push(if f.seccomp_filter {
        check(
            "seccomp",
            Status::Ok,
            "seccomp filters are supported",
            "the sandbox's system call filter",
            None,
        )
    } else {
        check(
            "seccomp",
            Status::Failure,
            "this kernel has no seccomp filters (CONFIG_SECCOMP_FILTER)",
            "every profile that keeps seccomp on (all the shipped ones)",
            Some("a kernel built with CONFIG_SECCOMP_FILTER=y (every distribution's is)".into()),
        )
    });

    const LIMITS: &str = "[limits] (memory, CPU, process count)";
    checks.push(match &f.cgroup {
        Cgroup::NotV2 { hybrid } => check(
            "cgroup",
            Status::Warning,
            match hybrid {
                Some(p) => format!(
                    "/sys/fs/cgroup is a hybrid hierarchy: the controllers are cgroup v1's, the v2 one at {} has none",
                    p.display()
                ),
                None => "/sys/fs/cgroup is not a cgroup v2 hierarchy".to_string(),
            },
            LIMITS,
            Some("boot with systemd.unified_cgroup_hierarchy=1 (GRUB_CMDLINE_LINUX in /etc/default/grub), then sudo update-grub and reboot".into()),
        ),
        Cgroup::NoOwnCgroup => check(
            "cgroup",
            Status::Warning,
            "this process is in no cgroup v2 cgroup (/proc/self/cgroup has no 0:: line)",
            LIMITS,
            Some("boot with systemd.unified_cgroup_hierarchy=1".into()),
        ),
        Cgroup::Delegated { path, controllers } => check(
            "cgroup",
            Status::Ok,
            format!(
                "cgroup v2, {} is delegated to you (controllers: {})",
                path.display(),
                if controllers.is_empty() { "none" } else { controllers }
            ),
            LIMITS,
            None,
        ),
        Cgroup::NotDelegated { path } => check(
            "cgroup",
            Status::Warning,
            format!(
                "cgroup v2, but {} is not delegated to you (you cannot create cgroups in it)",
                path.display()
            ),
            LIMITS,
            Some("systemd-run --user --scope -p Delegate=yes antimony run PROFILE".into()),
        ),
    });

    checks.push(device(
        "fuse",
        "/dev/fuse",
        "fuse",
        &f.fuse,
        "the encrypted-home hook (gocryptfs) and FUSE file systems in hooks",
    ));
    checks.push(device(
        "tun",
        "/dev/net/tun",
        "tun",
        &f.tun,
        "network = \"isolated\" (pasta gives the sandbox its own network stack through a tap device)",
    ));

    checks.push(helper(
        "xdg-dbus-proxy",
        &f.dbus_proxy,
        "xdg-dbus-proxy",
        "profiles with [dbus] (with-dbus, firefox, chromium): without it they get no session bus",
    ));
    checks.push(helper(
        "pasta",
        &f.pasta,
        "passt",
        "network = \"isolated\" (a network of the sandbox's own, through pasta)",
    ));
    checks.push(match (&f.gocryptfs, &f.fusermount3) {
        (Some(g), Some(m)) => check(
            "gocryptfs",
            Status::Ok,
            format!("{} and {}", g.display(), m.display()),
            "the encrypted-home hook",
            None,
        ),
        (g, m) => {
            let missing: Vec<&str> = [(g, "gocryptfs"), (m, "fusermount3")]
                .iter()
                .filter(|(p, _)| p.is_none())
                .map(|(_, n)| *n)
                .collect();
            let packages: Vec<&str> = [(g, "gocryptfs"), (m, "fuse3")]
                .iter()
                .filter(|(p, _)| p.is_none())
                .map(|(_, n)| *n)
                .collect();
            check(
                "gocryptfs",
                Status::Warning,
                format!("{} not found on PATH", missing.join(" and ")),
                "the encrypted-home hook",
                Some(format!("sudo apt install {}", packages.join(" "))),
            )
        }
    });

    const RUNTIME: &str = "the instance registry (ps, enter, stop, single_instance), the D-Bus proxy's socket, and the Wayland, PipeWire and session bus sockets the fragments bind";
    checks.push(match &f.runtime_dir {
        RuntimeDir::Private(p) => check(
            "runtime-dir",
            Status::Ok,
            format!("XDG_RUNTIME_DIR={} (yours, private)", p.display()),
            RUNTIME,
            None,
        ),
        RuntimeDir::Unset => check(
            "runtime-dir",
            Status::Warning,
            "XDG_RUNTIME_DIR is not set: antimony uses a folder in $TMPDIR instead, and finds no Wayland, PipeWire or session bus socket",
            RUNTIME,
            Some(format!(
                "log in through a session that sets it (pam_systemd), or: export XDG_RUNTIME_DIR=/run/user/{}",
                f.uid
            )),
        ),
        RuntimeDir::Missing(p) => check(
            "runtime-dir",
            Status::Warning,
            format!("XDG_RUNTIME_DIR={} does not exist", p.display()),
            RUNTIME,
            Some(format!("install -d -m 0700 {}", sh_quote(p))),
        ),
        RuntimeDir::NotPrivate(p, owner, mode) => check(
            "runtime-dir",
            Status::Warning,
            format!(
                "XDG_RUNTIME_DIR={} is not private (owner uid {owner}, mode {mode:04o})",
                p.display()
            ),
            RUNTIME,
            Some(if *owner == f.uid {
                format!("chmod 0700 {}", sh_quote(p))
            } else {
                format!(
                    "export XDG_RUNTIME_DIR=/run/user/{} (a folder of your own)",
                    f.uid
                )
            }),
        ),
    });
    if let Some(b) = &f.bad_base {
        checks.push(check(
            "runtime-folder",
            Status::Failure,
            format!("antimony's runtime folder {} {}", b.path.display(), b.why),
            "every run: antimony refuses a runtime folder someone else could have prepared",
            Some(format!("sudo rm -r {}", sh_quote(&b.path))),
        ));
    }

    checks.push(match &f.notifications {
        Some((address, true)) => check(
            "notifications",
            Status::Ok,
            format!("a notification service answers on the session bus ({address})"),
            "warnings and errors of runs started from a menu",
            None,
        ),
        Some((address, false)) => check(
            "notifications",
            Status::Info,
            format!("no notification service answers on the session bus ({address})"),
            "warnings and errors of runs started from a menu are not shown",
            Some("start a notification daemon (a desktop has one; else e.g. dunst)".into()),
        ),
        None => check(
            "notifications",
            Status::Info,
            "no session bus (DBUS_SESSION_BUS_ADDRESS unset, no $XDG_RUNTIME_DIR/bus)",
            "warnings and errors of runs started from a menu are not shown; [dbus] profiles get no bus",
            Some("run in a desktop session (dbus-run-session -- SHELL gives a shell one)".into()),
        ),
    });
    checks.push(if f.displays.is_empty() {
        check(
            "display",
            Status::Info,
            "no display (WAYLAND_DISPLAY and DISPLAY name no socket)",
            "graphical profiles (with-display, firefox, chromium) have nowhere to show windows",
            Some("run it in a desktop session".into()),
        )
    } else {
        let found: Vec<String> = f
            .displays
            .iter()
            .map(|(kind, socket)| format!("{kind} ({})", socket.display()))
            .collect();
        check(
            "display",
            Status::Ok,
            found.join(", "),
            "graphical profiles (with-display, firefox, chromium)",
            None,
        )
    });

    let can_run = !checks.iter().any(|c| c.status == Status::Failure);
    Report { can_run, checks }
}

fn device(id: &'static str, path: &str, module: &str, d: &Device, affects: &'static str) -> Check {
    match d {
        Device::Usable => check(
            id,
            Status::Ok,
            format!("{path} can be opened"),
            affects,
            None,
        ),
        Device::Missing => check(
            id,
            Status::Warning,
            format!("{path} does not exist"),
            affects,
            Some(format!("sudo modprobe {module}")),
        ),
        Device::NotCharDevice => check(
            id,
            Status::Warning,
            format!("{path} is not a character device"),
            affects,
            Some(format!("sudo modprobe {module}")),
        ),
        Device::Refused(errno) => check(
            id,
            Status::Warning,
            format!("{path} cannot be opened: {}", errno_text(*errno)),
            affects,
            // What udev's rule (50-udev-default.rules) gives it.
            Some(format!("sudo chmod 0666 {path}")),
        ),
    }
}

fn helper(
    id: &'static str,
    found: &Option<PathBuf>,
    package: &str,
    affects: &'static str,
) -> Check {
    match found {
        Some(p) => check(id, Status::Ok, p.display().to_string(), affects, None),
        None => check(
            id,
            Status::Warning,
            format!("{id} not found on PATH"),
            affects,
            Some(format!("sudo apt install {package}")),
        ),
    }
}

/// `strerror` and the errno's name: "Permission denied (EACCES)".
pub fn errno_text(errno: i32) -> String {
    let e = nix::errno::Errno::from_raw(errno);
    format!("{} ({e:?})", e.desc())
}

/// A path as one shell word.
fn sh_quote(p: &Path) -> String {
    let s = p.to_string_lossy();
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@%".contains(&b))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The report as text: one line per check, then what it affects and the
/// fix under each that is not ok, then the verdict. `escape` is applied to
/// what came from the environment (paths, addresses).
pub fn render(report: &Report, escape: &dyn Fn(&str) -> String) -> String {
    let mut out = String::new();
    for c in &report.checks {
        out.push_str(&format!(
            "{:<8} {}: {}\n",
            c.status.word(),
            c.id,
            escape(&c.found)
        ));
        if c.status != Status::Ok {
            out.push_str(&format!("         affects: {}\n", c.affects));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("         fix: {}\n", escape(fix)));
            }
        }
    }
    let count = |s: Status| report.checks.iter().filter(|c| c.status == s).count();
    let (failures, warnings) = (count(Status::Failure), count(Status::Warning));
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    if report.can_run {
        out.push_str(&format!(
            "antimony run can work here{}\n",
            if warnings > 0 {
                format!(
                    " ({}: the features they name cannot)",
                    plural(warnings, "warning")
                )
            } else {
                String::new()
            }
        ));
    } else {
        out.push_str(&format!(
            "antimony run cannot work here: {}\n",
            plural(failures, "failure")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Facts {
        Facts {
            uid: 1000,
            exe: INSTALLED.into(),
            unprivileged_userns_clone: None,
            max_user_namespaces: Some(63000),
            apparmor_restrict: None,
            apparmor_enabled: false,
            apparmor_loaded: None,
            apparmor_file: false,
            userns: Ok(()),
            landlock_abi: 7,
            seccomp_filter: true,
            cgroup: Cgroup::Delegated {
                path: "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service".into(),
                controllers: "cpu memory pids".into(),
            },
            fuse: Device::Usable,
            tun: Device::Usable,
            dbus_proxy: Some("/usr/bin/xdg-dbus-proxy".into()),
            pasta: Some("/usr/bin/pasta".into()),
            gocryptfs: Some("/usr/bin/gocryptfs".into()),
            fusermount3: Some("/usr/bin/fusermount3".into()),
            runtime_dir: RuntimeDir::Private("/run/user/1000".into()),
            bad_base: None,
            notifications: Some(("unix:path=/run/user/1000/bus".into(), true)),
            displays: vec![("Wayland", "/run/user/1000/wayland-0".into())],
        }
    }

    fn get<'a>(r: &'a Report, id: &str) -> &'a Check {
        r.checks.iter().find(|c| c.id == id).expect("a check")
    }

    #[test]
    fn a_healthy_host_is_all_ok() {
        let r = judge(&healthy());
        assert!(r.can_run);
        for c in &r.checks {
            assert_eq!(c.status, Status::Ok, "{c:?}");
            assert_eq!(c.fix, None);
        }
        let text = render(&r, &|s| s.to_string());
        assert!(text.ends_with("antimony run can work here\n"), "{text}");
    }

    #[test]
    fn no_user_namespaces_is_a_failure_with_the_sysctl_to_set() {
        let mut f = healthy();
        f.max_user_namespaces = Some(0);
        f.userns = Err(UsernsFailure {
            step: "unshare(CLONE_NEWUSER)",
            errno: libc::ENOSPC,
        });
        let r = judge(&f);
        assert!(!r.can_run);
        let fix = Some("sudo sysctl -w user.max_user_namespaces=15000".to_string());
        assert_eq!(get(&r, "userns-sysctls").status, Status::Failure);
        assert_eq!(get(&r, "userns-sysctls").fix, fix);
        let u = get(&r, "userns");
        assert_eq!(u.status, Status::Failure);
        assert_eq!(u.fix, fix);
        assert!(u.found.contains("(ENOSPC)"), "{}", u.found);
        let text = render(&r, &|s| s.to_string());
        assert!(
            text.ends_with("antimony run cannot work here: 2 failures\n"),
            "{text}"
        );
    }

    #[test]
    fn unprivileged_userns_clone_concerns_ordinary_users_only() {
        let mut f = healthy();
        f.unprivileged_userns_clone = Some(0);
        assert_eq!(
            get(&judge(&f), "userns-sysctls").fix.as_deref(),
            Some("sudo sysctl -w kernel.unprivileged_userns_clone=1")
        );
        f.uid = 0;
        assert_eq!(get(&judge(&f), "userns-sysctls").status, Status::Ok);
    }

    #[test]
    fn apparmor_restriction_is_lifted_by_the_loaded_profile_for_the_installed_path() {
        let mut f = healthy();
        f.apparmor_restrict = Some(1);
        f.apparmor_enabled = true;
        f.apparmor_file = true;
        f.apparmor_loaded = Some(true);
        assert_eq!(get(&judge(&f), "apparmor-userns").status, Status::Ok);
        f.exe = "/home/me/antimony/target/release/antimony".into();
        let c = get(&judge(&f), "apparmor-userns").clone();
        assert_eq!(c.status, Status::Failure);
        assert_eq!(c.fix.as_deref(), Some("/usr/bin/antimony doctor"));
        f.exe = INSTALLED.into();
        f.apparmor_loaded = Some(false);
        assert_eq!(
            get(&judge(&f), "apparmor-userns").fix.as_deref(),
            Some("sudo apparmor_parser -r /etc/apparmor.d/antimony")
        );
        f.apparmor_file = false;
        assert_eq!(
            get(&judge(&f), "apparmor-userns").fix.as_deref(),
            Some("sudo apt install ./antimony_*.deb")
        );
        f.uid = 0;
        assert_eq!(get(&judge(&f), "apparmor-userns").status, Status::Ok);
    }

    #[test]
    fn missing_helpers_and_devices_are_warnings_with_their_fix() {
        let mut f = healthy();
        f.dbus_proxy = None;
        f.fusermount3 = None;
        f.fuse = Device::Refused(libc::EACCES);
        f.tun = Device::Missing;
        let r = judge(&f);
        assert!(r.can_run);
        let fix = |id| get(&r, id).fix.clone().unwrap_or_default();
        assert_eq!(fix("xdg-dbus-proxy"), "sudo apt install xdg-dbus-proxy");
        assert_eq!(fix("gocryptfs"), "sudo apt install fuse3");
        assert_eq!(fix("fuse"), "sudo chmod 0666 /dev/fuse");
        assert_eq!(fix("tun"), "sudo modprobe tun");
        assert!(get(&r, "fuse").found.contains("Permission denied (EACCES)"));
        for id in ["xdg-dbus-proxy", "gocryptfs", "fuse", "tun"] {
            assert_eq!(get(&r, id).status, Status::Warning, "{id}");
        }
    }

    #[test]
    fn runtime_dir_and_informational_checks() {
        let mut f = healthy();
        f.runtime_dir = RuntimeDir::NotPrivate("/tmp/my run".into(), 1000, 0o777);
        f.notifications = None;
        f.displays.clear();
        let r = judge(&f);
        assert!(r.can_run);
        assert_eq!(
            get(&r, "runtime-dir").fix.as_deref(),
            Some("chmod 0700 '/tmp/my run'")
        );
        assert_eq!(get(&r, "notifications").status, Status::Info);
        assert_eq!(get(&r, "display").status, Status::Info);
        f.bad_base = Some(BadBase {
            path: "/tmp/antimony-1000".into(),
            why: "belongs to uid 1001, not to uid 1000".into(),
        });
        assert!(!judge(&f).can_run);
    }

    #[test]
    fn rendering_escapes_what_came_from_the_environment() {
        let mut f = healthy();
        f.runtime_dir = RuntimeDir::Missing("/run/\x1b[31mx".into());
        let text = render(&judge(&f), &|s| s.replace('\x1b', "\\e"));
        assert!(!text.contains('\x1b'));
        assert!(
            text.contains("XDG_RUNTIME_DIR=/run/\\e[31mx does not exist"),
            "{text}"
        );
        assert!(
            text.contains("         affects: the instance registry"),
            "{text}"
        );
    }

    #[test]
    fn json_names_each_check_with_its_status() {
        let mut f = healthy();
        f.pasta = None;
        let v = serde_json::to_value(judge(&f)).unwrap();
        assert_eq!(v["can_run"], true);
        let pasta = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == "pasta")
            .unwrap();
        assert_eq!(pasta["status"], "warning");
        assert_eq!(pasta["fix"], "sudo apt install passt");
    }
}
