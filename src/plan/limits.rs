//! Resource limits (`[limits]`), on by default: what the sandbox may take
//! of the machine, so that a runaway or hostile program leaves the host
//! usable.
//!
//! - Processes: RLIMIT_NPROC, set in the sandbox. Since Linux 5.14 the
//!   kernel counts it per user namespace (ucounts): a fork checks the count
//!   of the new process's user in its own namespace against the limit, and
//!   the count of each ancestor namespace's owner against the limit that
//!   owner had when the namespace was made. The sandbox's processes (threads
//!   included) count in the sandbox's user namespace, so a limit set there
//!   stops a fork bomb inside while the host user, whose own count grows
//!   only by what the sandbox holds, still starts processes. Checked on
//!   Linux 6.18 (`limits::a_fork_loop_stops_at_the_limit`). Root is the
//!   exception: `copy_process` never applies RLIMIT_NPROC to real uid 0
//!   (INIT_USER), capabilities or not, so a root sandbox is bounded by its
//!   PID namespace's own `pid_max` (per namespace since Linux 6.14)
//!   instead: `processes` plus the 300 numbers the kernel stops reusing
//!   once they have been handed out (RESERVED_PIDS).
//! - Open files (RLIMIT_NOFILE) and core dumps (RLIMIT_CORE 0 unless
//!   `core_dumps = true`). Like the process limit, these only ever lower
//!   what the user has (`sandbox::prepare` takes the smaller of both).
//! - tmpfs: one budget (default: half of RAM, what each tmpfs could take
//!   before) for every tmpfs of the sandbox together: 1 MiB each for the
//!   small ones (`/dev`, the read-only root, the base the root is built
//!   on, the forwarding area), the rest in equal shares for the others
//!   (`/tmp`, `/var/tmp`, `/dev/shm`, `/run/user/UID`, a private home, the
//!   profile's `tmpfs` entries, an overlay's writes).
//! - Memory and CPU: cgroup v2 `memory.max` and `cpu.max` on a cgroup of
//!   the sandbox's own, made in the nearest cgroup above antimony's that
//!   the user may write and that hands those controllers to its children
//!   (a delegated subtree). Where there is none (controllers on cgroup v1,
//!   no delegation), the run goes on with a warning saying why.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::host::HostView;
use crate::profile::Limits;
use crate::profile::validate::show_size;

use super::mounts::{Mount, Op};

const MIB: u64 = 1 << 20;

/// Processes and threads, by default: well above what a browser starts
/// (a few hundred threads, a thousand or two with many tabs).
pub const DEFAULT_PROCESSES: u64 = 8192;
/// Open files per process, by default: far above what programs use, and a
/// small part of the system's file table (`fs.file-max`).
pub const DEFAULT_OPEN_FILES: u64 = 65536;
/// The size of each small tmpfs.
pub const SMALL_TMPFS: u64 = MIB;
/// PID numbers the kernel reuses only until they have first run out
/// (`RESERVED_PIDS`, kernel/pid.c).
const RESERVED_PIDS: u64 = 300;
/// The kernel's highest `pid_max` (PID_MAX_LIMIT on 64-bit).
const PID_MAX_LIMIT: u64 = 1 << 22;
/// Where cgroup v2 may be mounted: alone, or beside v1 (hybrid).
const CGROUP2_MOUNTS: [&str; 2] = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"];

/// A limit and who chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit<T> {
    pub value: T,
    /// The profile file that set it; `None`: antimony's default.
    pub set_by: Option<String>,
}

impl<T> Limit<T> {
    fn from(set: Option<T>, default: T, key: &str, set_by: &BTreeMap<String, String>) -> Limit<T> {
        match set {
            Some(value) => Limit {
                value,
                set_by: Some(
                    set_by
                        .get(&format!("limits.{key}"))
                        .cloned()
                        .unwrap_or_else(|| "the profile".into()),
                ),
            },
            None => Limit {
                value: default,
                set_by: None,
            },
        }
    }

    fn origin(&self) -> String {
        match &self.set_by {
            None => "default".into(),
            Some(file) => format!("set by {}", crate::text::escape_line(file)),
        }
    }
}

/// The limits of one sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsPlan {
    pub processes: Limit<u64>,
    /// As root: the sandbox's PID namespace's `pid_max`, in place of
    /// RLIMIT_NPROC, which does not apply to root.
    pub pid_max: Option<u64>,
    pub open_files: Limit<u64>,
    pub core_dumps: Limit<bool>,
    /// All the tmpfs together, in bytes.
    pub tmpfs: Limit<u64>,
    /// The sandbox's root and the base init builds it on (which holds an
    /// overlay's writes), in bytes; the other tmpfs carry their size in
    /// the mount list.
    pub root_size: u64,
    pub base_size: u64,
    pub memory: Option<Limit<u64>>,
    /// Percent of one CPU.
    pub cpu: Option<Limit<u32>>,
    /// The sandbox's own cgroup, made for the run, where memory and CPU
    /// are bounded; `None` when neither is set or they cannot be enforced.
    pub cgroup: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    #[error(
        "limits.tmpfs: {} is too small for the sandbox's {count} tmpfs (at least 1 MiB each)",
        show_size(*total)
    )]
    TmpfsTooSmall { total: u64, count: u64 },
}

/// What the limits depend on besides the profile.
pub struct For<'a> {
    pub uid: u32,
    pub instance: &'a str,
}

/// Decides the limits, and sets the size of every tmpfs in `mounts` (the
/// final list). Limits that cannot be enforced here add a warning.
pub fn build(
    limits: &Limits,
    set_by: &BTreeMap<String, String>,
    run: &For,
    fs: &dyn HostView,
    mounts: &mut [Mount],
    warnings: &mut Vec<String>,
) -> Result<LimitsPlan, LimitsError> {
    let processes = Limit::from(limits.processes, DEFAULT_PROCESSES, "processes", set_by);
    let pid_max = if run.uid != 0 {
        None
    } else if per_namespace_pid_max(fs) {
        Some((processes.value + RESERVED_PIDS).min(PID_MAX_LIMIT))
    } else {
        warnings.push(format!(
            "limits.processes ({}) is not enforced: RLIMIT_NPROC does not apply to root, and this kernel (before Linux 6.14) has no pid_max per PID namespace",
            processes.value
        ));
        None
    };
    let ram = match fs.memory_total() {
        0 => 4 << 30,
        n => n,
    };
    let tmpfs = Limit::from(limits.tmpfs, ram / 2, "tmpfs", set_by);
    let (root_size, base_size) = size_tmpfs(tmpfs.value, mounts)?;
    let memory = limits
        .memory
        .map(|m| Limit::from(Some(m), 0, "memory", set_by));
    let cpu = limits.cpu.map(|c| Limit::from(Some(c), 0, "cpu", set_by));
    let mut need = Vec::new();
    if memory.is_some() {
        need.push("memory");
    }
    if cpu.is_some() {
        need.push("cpu");
    }
    let cgroup = if need.is_empty() {
        None
    } else {
        match delegated_cgroup(fs, run.uid, &need) {
            Ok(parent) => Some(parent.join(format!("antimony-{}", run.instance))),
            Err(why) => {
                let keys: Vec<String> = need.iter().map(|c| format!("limits.{c}")).collect();
                warnings.push(format!("{} not enforced: {why}", keys.join(" and ")));
                None
            }
        }
    };
    Ok(LimitsPlan {
        processes,
        pid_max,
        open_files: Limit::from(limits.open_files, DEFAULT_OPEN_FILES, "open_files", set_by),
        core_dumps: Limit::from(limits.core_dumps, false, "core_dumps", set_by),
        tmpfs,
        root_size,
        base_size,
        memory,
        cpu,
        cgroup,
    })
}

/// Whether `m` is one of the small tmpfs, which hold mount points and
/// antimony's own files: `/dev` (device binds and links) and the area for
/// forwarded files.
fn is_small(m: &Mount) -> bool {
    m.dest == Path::new("/dev") || m.dest == Path::new(super::FORWARD_AREA)
}

/// Splits `total` among the tmpfs of `mounts` (their `size` set here);
/// returns the sizes of the root and the base.
fn size_tmpfs(total: u64, mounts: &mut [Mount]) -> Result<(u64, u64), LimitsError> {
    let overlay = mounts.iter().any(|m| matches!(m.op, Op::Overlay { .. }));
    let tmpfs = |small: bool| {
        mounts
            .iter()
            .filter(|m| matches!(m.op, Op::Tmpfs { .. }) && is_small(m) == small)
            .count() as u64
    };
    // The root, and the base unless an overlay writes to it.
    let small = tmpfs(true) + 1 + u64::from(!overlay);
    let big = tmpfs(false) + u64::from(overlay);
    let too_small = LimitsError::TmpfsTooSmall {
        total,
        count: small + big,
    };
    let Some(rest) = total.checked_sub(small * SMALL_TMPFS) else {
        return Err(too_small);
    };
    // Whole pages: the kernel rounds a tmpfs's size up to them.
    let share = rest.checked_div(big).unwrap_or(0) & !4095;
    if big > 0 && share < SMALL_TMPFS {
        return Err(too_small);
    }
    for m in mounts.iter_mut() {
        let of = if is_small(m) { SMALL_TMPFS } else { share };
        if let Op::Tmpfs { size, .. } = &mut m.op {
            *size = of;
        }
    }
    Ok((SMALL_TMPFS, if overlay { share } else { SMALL_TMPFS }))
}

/// Linux 6.14 made `kernel.pid_max` a setting of each PID namespace.
fn per_namespace_pid_max(fs: &dyn HostView) -> bool {
    let release = fs
        .read(Path::new("/proc/sys/kernel/osrelease"))
        .unwrap_or_default();
    let release = String::from_utf8_lossy(&release);
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (6, 14)
}

/// The nearest cgroup at or above antimony's own, on cgroup v2, that
/// `uid` may write and that hands every controller of `need` to its
/// children; or why there is none.
fn delegated_cgroup(fs: &dyn HostView, uid: u32, need: &[&str]) -> Result<PathBuf, String> {
    let own = fs
        .read(Path::new("/proc/self/cgroup"))
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let own = String::from_utf8_lossy(&own);
    // `ID:CONTROLLERS:PATH`; v2 is the line `0::PATH`.
    let on_v1: Vec<&str> = need
        .iter()
        .copied()
        .filter(|c| {
            own.lines().any(|l| {
                let mut f = l.splitn(3, ':');
                let (id, list) = (f.next().unwrap_or("0"), f.next().unwrap_or(""));
                id != "0" && list.split(',').any(|x| x == *c)
            })
        })
        .collect();
    if !on_v1.is_empty() {
        return Err(format!(
            "the {} controller{} on cgroup v1 here (/proc/self/cgroup), and antimony sets these limits through cgroup v2 only",
            on_v1.join(" and "),
            if on_v1.len() > 1 { "s are" } else { " is" }
        ));
    }
    let path = own.lines().find_map(|l| l.strip_prefix("0::")).ok_or(
        "antimony's cgroup is on no cgroup v2 hierarchy (no `0::` line in /proc/self/cgroup)",
    )?;
    let mount = CGROUP2_MOUNTS
        .iter()
        .find(|m| fs.exists(&Path::new(m).join("cgroup.controllers")))
        .ok_or("no cgroup v2 hierarchy is mounted at /sys/fs/cgroup")?;
    let mut dir = Path::new(mount).join(path.trim().trim_start_matches('/'));
    let writable = |p: &Path| {
        fs.stat(p)
            .is_ok_and(|s| uid == 0 || (s.uid == uid && s.mode & 0o200 != 0))
    };
    loop {
        let control = fs
            .read(&dir.join("cgroup.subtree_control"))
            .unwrap_or_default();
        let control = String::from_utf8_lossy(&control);
        let hands = need
            .iter()
            .all(|c| control.split_whitespace().any(|x| x == *c));
        if hands && writable(&dir) && writable(&dir.join("cgroup.procs")) {
            return Ok(dir);
        }
        if dir == Path::new(mount) || !dir.pop() {
            break;
        }
    }
    Err(format!(
        "no cgroup at or above antimony's own ({path}) that you may write hands the {} controller to its children (start antimony in a delegated cgroup: systemd-run --user -p Delegate=yes …)",
        need.join(" and ")
    ))
}

impl fmt::Display for LimitsPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.processes;
        match self.pid_max {
            Some(max) => writeln!(
                f,
                "  processes:  {} ({}): as root, the PID namespace's pid_max {max} (root is exempt from RLIMIT_NPROC)",
                p.value,
                p.origin()
            )?,
            None => writeln!(
                f,
                "  processes:  {} ({}): RLIMIT_NPROC, threads included, counted in the sandbox's user namespace",
                p.value,
                p.origin()
            )?,
        }
        writeln!(
            f,
            "  open files: {} ({}): RLIMIT_NOFILE, per process",
            self.open_files.value,
            self.open_files.origin()
        )?;
        let c = &self.core_dumps;
        if c.value {
            writeln!(f, "  core dumps: as yours ({})", c.origin())?;
        } else {
            writeln!(f, "  core dumps: off ({}): RLIMIT_CORE 0", c.origin())?;
        }
        writeln!(
            f,
            "  tmpfs:      {} for all together ({}{}): sizes in the mount list; the root and the base it is built on {} and {}",
            show_size(self.tmpfs.value),
            self.tmpfs.origin(),
            if self.tmpfs.set_by.is_none() {
                ", half of RAM"
            } else {
                ""
            },
            show_size(self.root_size),
            show_size(self.base_size)
        )?;
        let place = match &self.cgroup {
            Some(dir) => format!("in the cgroup {}", dir.display()),
            None => "NOT ENFORCED (see the warning)".into(),
        };
        if let Some(m) = &self.memory {
            writeln!(
                f,
                "  memory:     {} ({}): cgroup v2 memory.max, {place}",
                show_size(m.value),
                m.origin()
            )?;
        }
        if let Some(c) = &self.cpu {
            writeln!(
                f,
                "  cpu:        {}% of one CPU ({}): cgroup v2 cpu.max, {place}",
                c.value,
                c.origin()
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::view::fake::FakeHost;

    fn tmpfs(dest: &str) -> Mount {
        Mount::new(
            dest,
            Op::Tmpfs {
                mode: 0o755,
                size: 0,
            },
            super::super::Origin::Base,
        )
    }

    fn size_of(m: &Mount) -> u64 {
        match m.op {
            Op::Tmpfs { size, .. } => size,
            _ => 0,
        }
    }

    #[test]
    fn the_budget_bounds_every_tmpfs_together() {
        let mut list: Vec<Mount> = [
            "/dev",
            "/dev/shm",
            "/tmp",
            "/var/tmp",
            "/run/user/1",
            "/home/u",
        ]
        .into_iter()
        .map(tmpfs)
        .collect();
        let total = 1 << 30;
        let (root, base) = size_tmpfs(total, &mut list).unwrap();
        assert_eq!(size_of(&list[0]), SMALL_TMPFS);
        let share = size_of(&list[1]);
        assert!(list[1..].iter().all(|m| size_of(m) == share));
        let sum: u64 = list.iter().map(size_of).sum::<u64>() + root + base;
        assert!(sum <= total && sum > total - 5 * 4096, "{sum}");
        // A budget too small to give each a mebibyte is an error.
        assert!(size_tmpfs(6 * MIB, &mut list).is_err());
    }

    #[test]
    fn an_overlay_writes_to_the_base_which_gets_a_share() {
        let mut list = vec![
            tmpfs("/tmp"),
            Mount::new(
                "/home/u",
                Op::Overlay { lower: "/x".into() },
                super::super::Origin::Home,
            ),
        ];
        let (_, base) = size_tmpfs(100 * MIB, &mut list).unwrap();
        assert_eq!(base, size_of(&list[0]));
        assert!(base > 40 * MIB);
    }

    fn cgroup_host(own: &str, control: &str, owner: u32) -> FakeHost {
        let mut fs = FakeHost::new();
        fs.file("/proc/self/cgroup", 0o444, own)
            .file(
                "/sys/fs/cgroup/cgroup.controllers",
                0o444,
                "cpu memory pids",
            )
            .dir_as(
                "/sys/fs/cgroup/user.slice/u.service/app.slice/a.scope",
                owner,
                0o755,
            )
            .file_as(
                "/sys/fs/cgroup/user.slice/u.service/app.slice/cgroup.subtree_control",
                owner,
                0o644,
                1,
                control,
            )
            .file_as(
                "/sys/fs/cgroup/user.slice/u.service/app.slice/cgroup.procs",
                owner,
                0o644,
                1,
                "",
            );
        fs.dir_as(
            "/sys/fs/cgroup/user.slice/u.service/app.slice",
            owner,
            0o755,
        );
        fs
    }

    #[test]
    fn the_cgroup_is_made_in_the_nearest_delegated_one() {
        let own = "0::/user.slice/u.service/app.slice/a.scope\n";
        let fs = cgroup_host(own, "cpu memory pids\n", 1000);
        assert_eq!(
            delegated_cgroup(&fs, 1000, &["memory", "cpu"]).unwrap(),
            Path::new("/sys/fs/cgroup/user.slice/u.service/app.slice")
        );
        // Not the user's, or not handing the controller on: none.
        assert!(delegated_cgroup(&fs, 1001, &["memory"]).is_err());
        let fs = cgroup_host(own, "pids\n", 1000);
        assert!(delegated_cgroup(&fs, 1000, &["memory"]).is_err());
    }

    #[test]
    fn controllers_on_cgroup_v1_are_named_in_the_warning() {
        let own = "4:memory:/x\n1:cpu:/\n0::/\n";
        let fs = cgroup_host(own, "", 0);
        let why = delegated_cgroup(&fs, 0, &["memory", "cpu"]).unwrap_err();
        assert!(
            why.contains("memory and cpu controllers are on cgroup v1"),
            "{why}"
        );
        let mut warnings = Vec::new();
        let limits = Limits {
            memory: Some(1 << 30),
            ..Limits::default()
        };
        let run = For {
            uid: 0,
            instance: "0123",
        };
        let plan = build(&limits, &BTreeMap::new(), &run, &fs, &mut [], &mut warnings).unwrap();
        assert!(plan.cgroup.is_none());
        assert!(
            warnings.iter().any(|w| w
                .starts_with("limits.memory not enforced: the memory controller is on cgroup v1")),
            "{warnings:?}"
        );
    }

    #[test]
    fn root_is_bounded_by_pid_max_where_the_kernel_has_one_per_namespace() {
        let mut fs = FakeHost::new();
        fs.file("/proc/sys/kernel/osrelease", 0o444, "6.18.44-fc\n");
        let limits = Limits {
            processes: Some(100),
            ..Limits::default()
        };
        let set_by = BTreeMap::from([("limits.processes".to_string(), "p.toml".to_string())]);
        let mut w = Vec::new();
        let root = For {
            uid: 0,
            instance: "1",
        };
        let plan = build(&limits, &set_by, &root, &fs, &mut [], &mut w).unwrap();
        assert_eq!(plan.pid_max, Some(400));
        assert_eq!(plan.processes.set_by.as_deref(), Some("p.toml"));
        assert_eq!(plan.open_files.set_by, None);
        let user = For {
            uid: 1000,
            instance: "1",
        };
        assert_eq!(
            build(&limits, &set_by, &user, &fs, &mut [], &mut w)
                .unwrap()
                .pid_max,
            None
        );
        assert!(w.is_empty());
        fs.file("/proc/sys/kernel/osrelease", 0o444, "6.8.0\n");
        let plan = build(&limits, &set_by, &root, &fs, &mut [], &mut w).unwrap();
        assert_eq!(plan.pid_max, None);
        assert!(w[0].contains("not enforced"), "{w:?}");
    }

    #[test]
    fn the_default_budget_is_half_of_ram() {
        let mut fs = FakeHost::new();
        fs.ram = 8 << 30;
        let mut list = vec![tmpfs("/tmp")];
        let run = For {
            uid: 1000,
            instance: "1",
        };
        let plan = build(
            &Limits::default(),
            &BTreeMap::new(),
            &run,
            &fs,
            &mut list,
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(plan.tmpfs.value, 4 << 30);
        assert_eq!(size_of(&list[0]), (4 << 30) - 2 * MIB);
        assert_eq!(plan.processes.value, DEFAULT_PROCESSES);
        assert!(!plan.core_dumps.value);
    }
}
