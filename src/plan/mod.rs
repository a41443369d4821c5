//! The plan: everything a run will do, decided before anything is started.
//!
//! `build` turns a resolved profile, the run options, the host facts and
//! the run's instance id into a `Plan`: namespaces, the mount list, the
//! Landlock rules, the seccomp program, the program's argv and environment,
//! and the hooks in the order they will run. It is a function of those
//! alone: what it needs to know of the host's files (which `/etc` entries
//! exist, where a program is on PATH, where links lead, the drop-in
//! folders, the Landlock ABI) it asks a `HostView`, never `std::fs`. The
//! plan is inert and printable (`--dry-run` prints it); `sandbox` carries
//! out its sandbox part and `crate::hooks` runs its hooks.
//!
//! This folder owns the profile-to-plan step: `mounts` (the file system),
//! `guard` (what a sandbox could change that a later run loads),
//! `landlock`, `seccomp`, `limits` (resource limits and tmpfs sizes),
//! `dbus` (the bus proxy's plan), `package` (the program's own `/etc`
//! configuration), `forward` (files the arguments name), `hooks` (hook
//! definitions: reusable hooks, drop-ins, and planning each hook). It may
//! use `profile` and `host`; nothing here starts a process or writes a file.

pub mod dbus;
mod display;
pub mod forward;
pub mod guard;
pub mod hooks;
pub mod landlock;
pub mod limits;
pub mod mounts;
pub mod network;
pub mod package;
pub mod seccomp;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::host::{Host, HostView};
use crate::profile::validate::{PathError, parse_host_path};
use crate::profile::{
    BindMode, EnvValue, FileEntry, ForwardMode, HomePolicy, HookCommand, HookEvent, HostPath,
    NetworkMode, Profile, ProgramRef, ShareNamespace,
};
pub use forward::Forward;
pub use hooks::{HookSource, PlannedHook, STOPPING_TIMEOUT, inside_state_key};
pub use landlock::LandlockPlan;
pub use limits::LimitsPlan;
pub use mounts::{Mount, Op, Origin};
pub use network::NetworkPlan;
pub use seccomp::SeccompPlan;

/// The PATH programs see inside the sandbox, and where a bare program name
/// is looked up.
pub const SANDBOX_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
const SANDBOX_PATH_ROOT: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The instance id of a plan that is built to be checked and never run
/// (`antimony check`, `antimony integrate`): no instance of it will exist,
/// so no id is drawn for it.
pub const CHECK_INSTANCE: &str = "0000000000000000";

/// Host variables the sandbox inherits unless the profile says otherwise.
const PASSED_VARIABLES: &[&str] = &["TERM", "COLORTERM", "LANG", "LANGUAGE", "TZ", "NO_COLOR"];

/// One-run overrides from the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--ro HOST[=SANDBOX]`
    pub ro: Vec<String>,
    /// `--rw HOST[=SANDBOX]`
    pub rw: Vec<String>,
    /// `--env KEY=VALUE`
    pub env: Vec<String>,
    /// `--network[=MODE]` / `--no-network`
    pub network: Option<NetworkMode>,
    /// `--program PATH`
    pub program: Option<String>,
    /// Everything after `--`.
    pub args: Vec<OsString>,
    /// `--forward`: overrides the profile's `files.forward`.
    pub forward: Option<ForwardMode>,
    /// A recording run (`learn`, `run --explain`): the paths the program
    /// names are reported to antimony (`seccomp::RecordPlan`).
    pub record: bool,
    /// With `record`: stop the program after this long.
    pub stop_after: Option<Duration>,
}

/// The namespaces the sandbox gets. User, mount and PID are always new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Namespaces {
    pub ipc: bool,
    pub uts: bool,
    pub cgroup: bool,
    /// A new network namespace (loopback only, unless pasta connects it).
    pub net: bool,
}

impl Namespaces {
    /// `clone(2)` flags.
    pub fn clone_flags(&self) -> libc::c_int {
        let mut f = libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID;
        for (on, flag) in [
            (self.ipc, libc::CLONE_NEWIPC),
            (self.uts, libc::CLONE_NEWUTS),
            (self.cgroup, libc::CLONE_NEWCGROUP),
            (self.net, libc::CLONE_NEWNET),
        ] {
            if on {
                f |= flag;
            }
        }
        f
    }

    pub fn names(&self) -> Vec<&'static str> {
        let mut v = vec!["user", "mount", "pid"];
        for (on, name) in [
            (self.ipc, "ipc"),
            (self.uts, "uts"),
            (self.cgroup, "cgroup"),
            (self.net, "net"),
        ] {
            if on {
                v.push(name);
            }
        }
        v
    }
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    /// This run's id (ANTIMONY_INSTANCE).
    pub instance: String,
    /// The program, as a path inside the sandbox.
    pub program: PathBuf,
    pub argv: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    pub cwd: PathBuf,
    /// The profile named it (`dir`): it must exist in the sandbox.
    pub cwd_explicit: bool,
    /// `$HOME` inside the sandbox (the same path as on the host).
    pub home: PathBuf,
    pub home_policy: HomePolicy,
    /// The persistent home folder on the host, for policies that have one.
    pub host_home: Option<PathBuf>,
    /// The sandbox runs as this uid and gid, mapped to the same ids outside.
    pub uid: u32,
    pub gid: u32,
    pub namespaces: Namespaces,
    pub network: NetworkPlan,
    pub mounts: Vec<Mount>,
    /// `[files] package_config`: what was found (bound read-only).
    pub package_config: Option<package::PackageConfig>,
    pub landlock: LandlockPlan,
    pub seccomp: Option<SeccompPlan>,
    /// A recording run: the notifying filter (see `seccomp::RecordPlan`).
    pub record: Option<seccomp::RecordPlan>,
    pub nested_userns: bool,
    /// The session bus proxy, when the profile has a `[dbus]` table.
    pub dbus: Option<dbus::DbusPlan>,
    pub hooks: Vec<PlannedHook>,
    /// Files this run loads that its sandbox could reach, kept read-only
    /// and in place there (`guard`).
    pub guarded: Vec<guard::Guarded>,
    /// Host files the arguments name, bound at their place (`forward`).
    pub forwards: Vec<Forward>,
    /// Files the arguments name that are not forwarded, and why.
    pub forward_warnings: Vec<String>,
    /// A later run joins this instance; it has a place for the files such
    /// a run forwards (`FORWARD_AREA`).
    pub single_instance: bool,
    pub grace: Duration,
    /// Resource limits (`limits`); the tmpfs sizes are in `mounts`.
    pub limits: LimitsPlan,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Profile(#[from] crate::profile::ProfileError),
    #[error("program `{name}` not found in the sandbox's PATH ({path})")]
    ProgramNotFound { name: String, path: String },
    #[error("{hook}: program `{name}` not found in PATH")]
    HookProgramNotFound { hook: String, name: String },
    #[error("{option} {value}: {reason}")]
    Option {
        option: &'static str,
        value: String,
        #[source]
        reason: OptionError,
    },
    /// The sandbox could change a file a later run loads.
    #[error(transparent)]
    Exposed(#[from] Box<guard::Exposed>),
    /// `place`: `files` for a profile's entry, `--ro`/`--rw` for an option
    /// (`command line` for one inside antimony's own folders).
    #[error("{place}: `{entry}`: {reason}")]
    Files {
        place: String,
        entry: String,
        #[source]
        reason: FilesError,
    },
    #[error(transparent)]
    Landlock(#[from] landlock::LandlockError),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    #[error(transparent)]
    Limits(#[from] limits::LimitsError),
}

/// Why a command-line option's value is refused.
#[derive(Debug, thiserror::Error)]
pub enum OptionError {
    /// `--program`, `--ro`, `--rw`: not a path antimony takes.
    #[error(transparent)]
    Path(#[from] PathError),
    /// `--ro`/`--rw` with a relative path, and no current folder to join it to.
    #[error("the current folder is unknown")]
    NoCurrentFolder,
    /// `--env` without `=`.
    #[error("expected KEY=VALUE")]
    NotKeyValue,
    /// `--env` with an empty name or a NUL.
    #[error("not a variable assignment")]
    NotAssignment,
}

/// Why a `[files]` entry (or `--ro`/`--rw`) cannot be mounted.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error(transparent)]
    Expand(#[from] ExpandError),
    /// A `$NAME` it names is not set (`optional_allowed`: a bind, which
    /// `?` would have skipped).
    #[error("a variable it names is not set{}", if *.optional_allowed { " (write `?` before it to skip it then)" } else { "" })]
    Unset { optional_allowed: bool },
    #[error("cannot mount over the sandbox's root `/`")]
    OverRoot,
    /// The host's session bus socket, which only `[dbus]` may give.
    #[error("{} is the raw session bus; give the sandbox the bus through [dbus], which filters it", .0.display())]
    RawSessionBus(PathBuf),
    /// Inside one of antimony's own folders (`Host::protected_dirs`).
    #[error("it is inside {}, one of antimony's own folders, which no sandbox may see", .0.display())]
    Protected(PathBuf),
}

/// A `[files]` path whose variables expand to something that is not an
/// absolute path without `..`.
#[derive(Debug, thiserror::Error)]
#[error("`{written}` expands to `{}`, not an absolute path without `..`", expanded.display())]
pub struct ExpandError {
    pub written: String,
    pub expanded: PathBuf,
}

/// Builds the plan for one run: a function of the profile, the options,
/// the host's facts and files (`fs`) and the run's id, which names its bus
/// socket and is handed to its hooks. Each step below decides one part.
pub fn build(
    profile: &Profile,
    opts: &RunOptions,
    host: &Host,
    fs: &dyn HostView,
    instance: &str,
) -> Result<Plan, PlanError> {
    if profile.fragment {
        return Err(crate::profile::ProfileError::Fragment {
            name: profile.name.clone(),
        }
        .into());
    }
    let mut warnings = Vec::new();
    let home = host.home.clone();
    let sb = &profile.sandbox;
    let network = NetworkPlan::build(opts.network.unwrap_or(sb.network), sb, fs);
    if network.mode != NetworkMode::Isolated && (!sb.forward_ports.is_empty() || sb.local_network) {
        warnings.push(format!(
            "forward_ports and local_network apply to the isolated network only; this run's network is {}",
            match network.mode {
                NetworkMode::Host => "the host's",
                _ => "none",
            }
        ));
    }

    let program = program(profile, opts, host, fs)?;
    let mut argv: Vec<OsString> = vec![program.clone().into_os_string()];
    argv.extend(profile.arguments.iter().map(OsString::from));
    argv.extend(opts.args.iter().cloned());

    let host_home = match profile.home.policy {
        HomePolicy::None => None,
        _ => Some(host.data_home.join("antimony").join(profile.home_name())),
    };
    let facts = mounts::BaseFacts::probe(fs, host.uid, host.gid, &host.user, &home);
    let dbus = match &profile.dbus {
        None => None,
        Some(d) => {
            let run = dbus::For {
                name: &profile.name,
                network: network.mode.any(),
                instance,
                facts: &facts,
            };
            match dbus::build(d, host, fs, &run)? {
                Ok(plan) => Some(plan),
                Err(w) => {
                    warnings.push(w.to_string());
                    None
                }
            }
        }
    };
    // Only for a profile that asks: it reads dpkg's lists.
    let package_config = profile.package_config.then(|| {
        let mut found = package::find(fs, &program, &profile.name);
        // Never one of antimony's own folders (`/etc/antimony`).
        let protected = protected_dirs(host, fs);
        found.paths.retain(|path| {
            let real = mounts::real_path(fs, path);
            !protected
                .iter()
                .any(|(p, r)| path.starts_with(p) || real.starts_with(r))
        });
        found
    });
    let place = Place {
        host,
        fs,
        home: &home,
        host_home: host_home.as_deref(),
        network: network.mode,
        facts: &facts,
        package_config: package_config.as_ref(),
    };
    let mut forward_warnings = Vec::new();
    let (mounts, forwards) = file_system(
        profile,
        opts,
        &place,
        &argv,
        dbus.as_ref(),
        &mut warnings,
        &mut forward_warnings,
    )?;
    let env = sandbox_environment(profile, opts, host, &home, dbus.is_some())?;
    if x11_is_the_display(fs, &mounts, &env) {
        warnings.push(
            "the display is X11, which cannot isolate input: the program can log your keystrokes, read and control other windows (prefer Wayland: inherit with-wayland only)".into(),
        );
    }
    let cwd = working_folder(profile, host, &home, &mounts);
    // A relative argument names its file from antimony's working folder:
    // where the program starts elsewhere, it gets the absolute path.
    if host.cwd.as_deref() != Some(cwd.as_path()) {
        for f in forwards.iter().filter(|f| f.relative) {
            argv[f.arg] = f.path.clone().into_os_string();
        }
    }
    let (landlock, seccomp) = confinement(profile, fs, &mounts, network.mode, &mut warnings)?;

    let vars = hooks::library::Vars {
        profile: profile.name.clone(),
        home: match profile.home.policy {
            HomePolicy::Enabled | HomePolicy::Overlay => {
                host_home.as_ref().map(|h| h.display().to_string())
            }
            _ => None,
        },
        instance: instance.to_string(),
    };
    let hooks = hooks::plan(profile, host, fs, &vars, &mut warnings)?;
    // Nothing a run loads may be changed by its sandbox: guarded in place,
    // or the launch refused. (Landlock and the working folder above do not
    // depend on the guarding mounts.)
    let (guards, guarded) = guard::check(fs, &mounts, || loaded_files(fs, profile, &hooks))?;
    let mut mounts = if guards.is_empty() {
        mounts
    } else {
        let mut all = mounts;
        all.extend(guards);
        mounts::finish(all)
    };
    let run = limits::For {
        uid: host.uid,
        instance,
    };
    let limits = limits::build(
        &profile.limits,
        &profile.set_by,
        &run,
        fs,
        &mut mounts,
        &mut warnings,
    )?;

    Ok(Plan {
        name: profile.name.clone(),
        instance: instance.to_string(),
        cwd_explicit: profile.dir.is_some(),
        program,
        argv,
        env,
        cwd,
        home,
        home_policy: profile.home.policy,
        host_home,
        uid: host.uid,
        gid: host.gid,
        namespaces: Namespaces {
            ipc: !sb.share.contains(&ShareNamespace::Ipc),
            uts: !sb.share.contains(&ShareNamespace::Uts),
            cgroup: !sb.share.contains(&ShareNamespace::Cgroup),
            net: network.own_namespace(),
        },
        network,
        mounts,
        package_config,
        landlock,
        seccomp,
        record: opts
            .record
            .then(|| seccomp::RecordPlan::build(opts.stop_after)),
        nested_userns: sb.nested_userns,
        dbus,
        hooks,
        guarded,
        forwards,
        forward_warnings,
        single_instance: sb.single_instance,
        grace: profile.grace,
        limits,
        warnings,
    })
}

/// What the file system's plan is drawn from besides the profile.
struct Place<'a> {
    host: &'a Host,
    fs: &'a dyn HostView,
    /// The home inside the sandbox.
    home: &'a Path,
    /// The persistent home's folder on the host, if the profile keeps one.
    host_home: Option<&'a Path>,
    network: NetworkMode,
    /// What the base layout depends on, looked at once.
    facts: &'a mounts::BaseFacts,
    /// The program's `/etc` configuration, with `package_config`.
    package_config: Option<&'a package::PackageConfig>,
}

/// The sandbox's file system: the base root, the home, the profile's and
/// the command line's binds, the bus socket, and masks over antimony's own
/// folders wherever a bind reaches them (a bind that would give one of
/// them away outright is refused).
fn file_system(
    profile: &Profile,
    opts: &RunOptions,
    at: &Place,
    argv: &[OsString],
    dbus: Option<&dbus::DbusPlan>,
    warnings: &mut Vec<String>,
    forward_warnings: &mut Vec<String>,
) -> Result<(Vec<Mount>, Vec<Forward>), PlanError> {
    let (host, fs) = (at.host, at.fs);
    let mut list = mounts::base(at.facts, host.uid, at.network);
    list.push(Mount {
        dest: at.home.to_path_buf(),
        op: match (&profile.home.policy, at.host_home) {
            (HomePolicy::Enabled, Some(h)) => Op::Bind {
                source: h.to_path_buf(),
                mode: BindMode::Rw,
                optional: false,
            },
            (HomePolicy::ReadOnly, Some(h)) => Op::Bind {
                source: h.to_path_buf(),
                mode: BindMode::Ro,
                optional: false,
            },
            (HomePolicy::Overlay, Some(h)) => Op::Overlay {
                lower: h.to_path_buf(),
            },
            _ => Op::Tmpfs {
                mode: 0o700,
                size: 0,
            },
        },
        origin: Origin::Home,
    });
    // Before the profile's own entries, which may bind the same place
    // otherwise.
    for path in at.package_config.map_or(&[][..], |c| &c.paths) {
        list.push(Mount {
            dest: path.clone(),
            op: Op::Bind {
                source: path.clone(),
                mode: BindMode::Ro,
                optional: false,
            },
            origin: Origin::Profile,
        });
    }
    for entry in &profile.files {
        list.extend(file_entry(entry, host, Origin::Profile)?);
    }
    for (mode, values, option) in [
        (BindMode::Ro, &opts.ro, "--ro"),
        (BindMode::Rw, &opts.rw, "--rw"),
    ] {
        for value in values {
            let entry = cli_bind(mode, value, host).map_err(|reason| PlanError::Option {
                option,
                value: value.clone(),
                reason,
            })?;
            list.extend(file_entry(&entry, host, Origin::CommandLine)?);
        }
    }
    if let Some(plan) = dbus {
        list.push(Mount {
            dest: dbus::sandbox_socket(host.uid),
            op: Op::Bind {
                source: plan.socket.clone(),
                mode: BindMode::Rw,
                optional: false,
            },
            origin: Origin::Base,
        });
    }
    // antimony's own folders are never a sandbox's, not even a part of one
    // (a bind above them gets them masked instead, below). Compared as
    // written and as the kernel resolves them: `/var/home/u` is `~` where
    // `/home` links to `var/home`.
    let protected = protected_dirs(host, fs);
    refuse_protected(fs, &list, &protected)?;
    if profile.sandbox.single_instance {
        list.push(Mount::new(
            FORWARD_AREA,
            Op::Tmpfs {
                mode: 0o755,
                size: 0,
            },
            Origin::Base,
        ));
    }
    let visible = |p: &Path, mode: BindMode| visible_in(&list, p, mode);
    let cx = forward::Context {
        fs,
        mode: opts.forward.unwrap_or(profile.forward),
        cwd: host.cwd.as_deref(),
        home: &host.home,
        runtime_dir: host.runtime_dir.as_deref(),
        protected: &protected,
        visible: &visible,
    };
    let (forwards, said) = forward::pick(argv, &cx);
    forward_warnings.extend(said);
    for f in &forwards {
        list.push(Mount::new(
            f.path.clone(),
            Op::Bind {
                source: f.source.clone(),
                mode: f.mode,
                optional: false,
            },
            Origin::Forward,
        ));
    }
    let runtime_bound = host.runtime_dir.as_ref().is_some_and(|rt| {
        list.iter()
            .any(|m| matches!(&m.op, Op::Bind { source, .. } if rt.starts_with(source)))
    });
    if runtime_bound {
        warnings.push(
            "a bind gives the sandbox your whole runtime folder: every socket of your desktop, the raw session bus included (bind the sockets it needs instead)".into(),
        );
    }
    let masks = mounts::protect(fs, &list, &protected);
    list.extend(masks);
    Ok((mounts::finish(list), forwards))
}

/// Where a run that joins a `single_instance` sandbox puts the files it
/// forwards (a tmpfs of the sandbox's own, so that Landlock's rule on it
/// covers what is bound beneath it later).
pub const FORWARD_AREA: &str = "/run/antimony/files";

/// Whether host path `p` is visible at its own place among `list` (not yet
/// ordered), with at least `mode`: the deepest mount over it is a bind of
/// the same place, and no mask hides it.
impl Plan {
    /// Whether the host's `p` is in the sandbox, at its own place (bound
    /// there, or beneath a bind of a folder above it).
    pub fn visible(&self, p: &Path) -> bool {
        visible_in(&self.mounts, p, BindMode::Ro)
    }
}

fn visible_in(list: &[Mount], p: &Path, mode: BindMode) -> bool {
    let over = list
        .iter()
        .enumerate()
        .filter(|(_, m)| m.covers() && p.starts_with(&m.dest))
        .max_by_key(|(i, m)| (m.dest.components().count(), *i));
    let Some((_, m)) = over else {
        return false;
    };
    match &m.op {
        Op::Bind {
            source, mode: have, ..
        } => {
            let rest = p.strip_prefix(&m.dest).unwrap_or(Path::new(""));
            let same = if rest.as_os_str().is_empty() {
                source == p
            } else {
                source.join(rest) == p
            };
            same && (mode == BindMode::Ro || *have == BindMode::Rw)
        }
        _ => false,
    }
}

/// The program's environment; with a bus, its address inside.
fn sandbox_environment(
    profile: &Profile,
    opts: &RunOptions,
    host: &Host,
    home: &Path,
    bus: bool,
) -> Result<Vec<(OsString, OsString)>, PlanError> {
    let mut env = environment(profile, opts, host, home)?;
    if bus {
        let address = format!("unix:path={}", dbus::sandbox_socket(host.uid).display());
        env.retain(|(k, _)| k != "DBUS_SESSION_BUS_ADDRESS");
        env.push(("DBUS_SESSION_BUS_ADDRESS".into(), address.into()));
        env.sort();
    }
    Ok(env)
}

/// The working directory: the profile's, else where antimony was started
/// if that place is the same inside, else the home.
fn working_folder(profile: &Profile, host: &Host, home: &Path, mounts: &[Mount]) -> PathBuf {
    match &profile.dir {
        Some(d) => d.resolve(home),
        None => host
            .cwd
            .clone()
            .filter(|c| visible_as_is(c, mounts))
            .unwrap_or_else(|| home.to_path_buf()),
    }
}

/// Landlock's rules for these mounts (on the kernel's ABI) and the seccomp
/// filter, as the profile asks.
fn confinement(
    profile: &Profile,
    fs: &dyn HostView,
    mounts: &[Mount],
    network: NetworkMode,
    warnings: &mut Vec<String>,
) -> Result<(LandlockPlan, Option<SeccompPlan>), PlanError> {
    let sb = &profile.sandbox;
    // Host abstract sockets exist in the sandbox only with the host's network.
    // (An isolated sandbox reaches none, and X clients then use the
    // socket file: with-x11 names one for the host's network.)
    let abstract_sockets: &[String] = if network == NetworkMode::Host {
        &sb.abstract_sockets
    } else {
        &[]
    };
    let ports = landlock::Ports {
        connect: sb.tcp_connect.clone(),
        bind: sb.tcp_bind.clone(),
    };
    let landlock = LandlockPlan::build(
        sb.landlock,
        fs.landlock_abi(),
        mounts,
        abstract_sockets,
        &ports,
    )?;
    if sb.landlock != crate::profile::LandlockMode::Off && !landlock.enforced() {
        warnings.push("this kernel does not implement Landlock: its rules are not enforced".into());
    }
    if !ports.is_empty() {
        if sb.landlock == crate::profile::LandlockMode::Off {
            warnings.push(
                "landlock = \"off\": the port rules (tcp_connect, tcp_bind) are not enforced"
                    .into(),
            );
        } else if landlock.enforced() && landlock.abi < landlock::PORTS_ABI {
            warnings.push(format!(
                "this kernel's Landlock (ABI {}) has no port rules (ABI {} and later): tcp_connect and tcp_bind are not enforced",
                landlock.abi,
                landlock::PORTS_ABI
            ));
        }
    }
    let seccomp = if sb.seccomp {
        Some(SeccompPlan::build(sb.nested_userns)?)
    } else {
        None
    };
    Ok((landlock, seccomp))
}

/// The program the sandbox runs, as a path inside it: `--program`, else
/// the profile's `path` (the first of its alternatives found), else the
/// profile's name on the sandbox's PATH.
fn program(
    profile: &Profile,
    opts: &RunOptions,
    host: &Host,
    fs: &dyn HostView,
) -> Result<PathBuf, PlanError> {
    match &opts.program {
        Some(p) if p.contains('/') || p.starts_with('~') => {
            let path = parse_host_path(p).map_err(|e| PlanError::Option {
                option: "--program",
                value: p.clone(),
                reason: e.into(),
            })?;
            program_in_sandbox(&ProgramRef::Path(path), host, fs)
        }
        Some(name) => program_in_sandbox(&ProgramRef::Name(name.clone()), host, fs),
        None => match profile.path.as_slice() {
            [] => program_in_sandbox(&ProgramRef::Name(profile.name.clone()), host, fs),
            [one] => program_in_sandbox(one, host, fs),
            // Alternatives: the first that exists.
            many => many
                .iter()
                .find_map(|p| match p {
                    ProgramRef::Name(_) => program_in_sandbox(p, host, fs).ok(),
                    ProgramRef::Path(hp) => {
                        let path = hp.resolve(&host.home);
                        fs.exists(&path).then_some(path)
                    }
                })
                .ok_or_else(|| PlanError::ProgramNotFound {
                    name: many
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" or "),
                    path: sandbox_path(host.uid).to_string(),
                }),
        },
    }
}

/// antimony's own folders, each as written and as the kernel resolves it.
fn protected_dirs(host: &Host, fs: &dyn HostView) -> Vec<(PathBuf, PathBuf)> {
    host.protected_dirs()
        .into_iter()
        .map(|p| {
            let real = mounts::real_path(fs, &p);
            (p, real)
        })
        .collect()
}

/// Refuses a bind a profile or the command line chose inside one of
/// antimony's own folders (`protected`: each as written and as resolved).
fn refuse_protected(
    fs: &dyn HostView,
    list: &[Mount],
    protected: &[(PathBuf, PathBuf)],
) -> Result<(), PlanError> {
    for m in list {
        let Op::Bind { source, .. } = &m.op else {
            continue;
        };
        if !matches!(m.origin, Origin::Profile | Origin::CommandLine) {
            continue;
        }
        let real = mounts::real_path(fs, source);
        if let Some((p, _)) = protected
            .iter()
            .find(|(p, r)| source.starts_with(p) || real.starts_with(r))
        {
            return Err(PlanError::Files {
                place: match m.origin {
                    Origin::CommandLine => "command line".into(),
                    _ => "files".into(),
                },
                entry: source.display().to_string(),
                reason: FilesError::Protected(p.clone()),
            });
        }
    }
    Ok(())
}

impl Plan {
    pub fn hooks(&self, event: HookEvent) -> impl Iterator<Item = &PlannedHook> {
        self.hooks.iter().filter(move |h| h.hook.event == event)
    }

    /// Folders on the host that must exist before the sandbox starts (the
    /// persistent home).
    pub fn host_dirs_to_create(&self) -> Vec<&Path> {
        self.host_home.iter().map(PathBuf::as_path).collect()
    }
}

/// Expands a `[files]` path for one side: on the host, `$XDG_RUNTIME_DIR`
/// is the host's runtime folder; in the sandbox, its own `/run/user/UID`.
/// Any other `$NAME` is the host's value (an absolute value replaces what
/// came before, as in `$XDG_RUNTIME_DIR/$WAYLAND_DISPLAY` with an absolute
/// WAYLAND_DISPLAY). `Ok(None)`: a variable is not set.
pub fn expand_path(
    p: &HostPath,
    host: &Host,
    in_sandbox: bool,
) -> Result<Option<PathBuf>, ExpandError> {
    let HostPath::Vars(s) = p else {
        return Ok(Some(p.resolve(&host.home)));
    };
    let mut out = PathBuf::new();
    for (i, part) in s.split('/').enumerate() {
        match part {
            "" if i == 0 => out.push("/"),
            "~" if i == 0 => out.push(&host.home),
            v if v.starts_with('$') => {
                let name = &v[1..];
                let value: Option<PathBuf> = if name == "XDG_RUNTIME_DIR" {
                    if in_sandbox {
                        Some(PathBuf::from(format!("/run/user/{}", host.uid)))
                    } else {
                        host.runtime_dir.clone()
                    }
                } else {
                    host.var(name).filter(|v| !v.is_empty()).map(PathBuf::from)
                };
                match value {
                    Some(v) => out.push(v),
                    None => return Ok(None),
                }
            }
            other => out.push(other),
        }
    }
    if !out.is_absolute()
        || out
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(ExpandError {
            written: s.clone(),
            expanded: out,
        });
    }
    Ok(Some(out))
}

/// A `[files]` entry as a mount; `None` when an optional entry names an
/// unset variable.
fn file_entry(entry: &FileEntry, host: &Host, origin: Origin) -> Result<Option<Mount>, PlanError> {
    let err = |reason: FilesError| PlanError::Files {
        place: match (origin, entry) {
            (Origin::CommandLine, FileEntry::Bind { mode, .. }) => format!("--{}", mode.key()),
            _ => "files".into(),
        },
        entry: entry.written(),
        reason,
    };
    let expand = |p: &HostPath, in_sandbox: bool| -> Result<Option<PathBuf>, PlanError> {
        expand_path(p, host, in_sandbox).map_err(|e| err(e.into()))
    };
    match entry {
        FileEntry::Bind {
            mode,
            source,
            dest,
            optional,
        } => {
            let (Some(src), Some(dst)) = (expand(source, false)?, expand(dest, true)?) else {
                return if *optional {
                    Ok(None)
                } else {
                    Err(err(FilesError::Unset {
                        optional_allowed: true,
                    }))
                };
            };
            // Checked here, where `$NAME` parts are known (validation
            // refuses a literal `/` with its position already).
            if dst == Path::new("/") {
                return Err(err(FilesError::OverRoot));
            }
            // The raw session bus would bypass [dbus] and its filter.
            if let Some(rt) = &host.runtime_dir {
                if src == rt.join("bus") {
                    return Err(err(FilesError::RawSessionBus(src)));
                }
            }
            Ok(Some(Mount {
                dest: dst,
                op: Op::Bind {
                    source: src,
                    mode: *mode,
                    optional: *optional,
                },
                origin,
            }))
        }
        FileEntry::Tmpfs { dest } => match expand(dest, true)? {
            Some(dst) if dst == Path::new("/") => Err(err(FilesError::OverRoot)),
            Some(dst) => Ok(Some(Mount {
                dest: dst,
                op: Op::Tmpfs {
                    mode: 0o755,
                    size: 0,
                },
                origin,
            })),
            None => Err(err(FilesError::Unset {
                optional_allowed: false,
            })),
        },
    }
}

/// Parses `--ro`/`--rw`: `[?]HOST[=SANDBOX]`; a relative HOST is relative
/// to the current folder.
fn cli_bind(mode: BindMode, value: &str, host: &Host) -> Result<FileEntry, OptionError> {
    let (optional, rest) = match value.strip_prefix('?') {
        Some(r) => (true, r),
        None => (false, value),
    };
    let (h, s) = rest.split_once('=').unwrap_or((rest, rest));
    let absolute = |p: &str| -> Result<HostPath, OptionError> {
        Ok(if p.starts_with('/') || p.starts_with('~') {
            parse_host_path(p)?
        } else {
            let cwd = host.cwd.as_ref().ok_or(OptionError::NoCurrentFolder)?;
            parse_host_path(&cwd.join(p).to_string_lossy())?
        })
    };
    let source = absolute(h)?;
    let dest = absolute(s)?;
    Ok(FileEntry::Bind {
        mode,
        source,
        dest,
        optional,
    })
}

/// Finds the program as the sandbox will see it. A bare name is looked up
/// in the sandbox's PATH, on the host's copy of those folders (they are
/// bound read-only into every sandbox).
fn program_in_sandbox(
    p: &ProgramRef,
    host: &Host,
    fs: &dyn HostView,
) -> Result<PathBuf, PlanError> {
    match p {
        ProgramRef::Path(path) => Ok(path.resolve(&host.home)),
        ProgramRef::Name(name) => {
            let path = sandbox_path(host.uid);
            fs.find_program(name, path)
                .ok_or_else(|| PlanError::ProgramNotFound {
                    name: name.clone(),
                    path: path.to_string(),
                })
        }
    }
}

/// The sandbox's PATH for this user (root's has the sbin folders).
pub fn sandbox_path(uid: u32) -> &'static str {
    if uid == 0 {
        SANDBOX_PATH_ROOT
    } else {
        SANDBOX_PATH
    }
}

/// Whether a host folder is at the same path, with the same content, inside.
fn visible_as_is(path: &Path, mounts: &[Mount]) -> bool {
    let Some(m) = mounts.iter().rev().find(|m| path.starts_with(&m.dest)) else {
        return false;
    };
    match &m.op {
        Op::Bind { source, .. } => *source == m.dest && !masked(path, mounts),
        _ => false,
    }
}

fn masked(path: &Path, mounts: &[Mount]) -> bool {
    mounts
        .iter()
        .any(|m| matches!(m.op, Op::Mask) && path.starts_with(&m.dest))
}

/// The sandbox reaches an X server (its socket folder is bound and exists,
/// DISPLAY is set) and no Wayland compositor: X11 is how it displays.
fn x11_is_the_display(fs: &dyn HostView, mounts: &[Mount], env: &[(OsString, OsString)]) -> bool {
    let set = |k: &str| env.iter().any(|(n, v)| n == k && !v.is_empty());
    let socket = mounts.iter().any(|m| {
        m.dest == Path::new("/tmp/.X11-unix")
            && matches!(&m.op, Op::Bind { source, .. } if fs.exists(source))
    });
    socket && set("DISPLAY") && !set("WAYLAND_DISPLAY")
}

fn environment(
    profile: &Profile,
    opts: &RunOptions,
    host: &Host,
    home: &Path,
) -> Result<Vec<(OsString, OsString)>, PlanError> {
    let mut env: BTreeMap<OsString, OsString> = BTreeMap::new();
    let mut set = |k: &str, v: &OsStr| {
        env.insert(k.into(), v.to_os_string());
    };
    set("PATH", OsStr::new(sandbox_path(host.uid)));
    set("HOME", home.as_os_str());
    set("USER", OsStr::new(&host.user));
    set("LOGNAME", OsStr::new(&host.user));
    let runtime = format!("/run/user/{}", host.uid);
    set("XDG_RUNTIME_DIR", OsStr::new(&runtime));
    for name in PASSED_VARIABLES {
        if let Some(v) = host.var(name) {
            set(name, v);
        }
    }
    for (k, v) in &host.env {
        if k.to_string_lossy().starts_with("LC_") {
            env.insert(k.clone(), v.clone());
        }
    }
    let mut apply = |key: &str, value: &EnvValue| match value {
        EnvValue::Literal(s) => {
            env.insert(key.into(), s.into());
        }
        EnvValue::FromHost(name) => match host.var(name) {
            Some(v) => {
                env.insert(key.into(), v.to_os_string());
            }
            None => {
                env.remove(OsStr::new(key));
            }
        },
    };
    for (k, v) in &profile.environment {
        apply(k, v);
    }
    for item in &opts.env {
        let Some((k, v)) = item.split_once('=') else {
            return Err(PlanError::Option {
                option: "--env",
                value: item.clone(),
                reason: OptionError::NotKeyValue,
            });
        };
        if k.is_empty() || k.contains('\0') || v.contains('\0') {
            return Err(PlanError::Option {
                option: "--env",
                value: item.clone(),
                reason: OptionError::NotAssignment,
            });
        }
        // The same `$NAME` rule as in profiles.
        let value = crate::profile::validate::parse_env_value(v);
        apply(k, &value);
    }
    Ok(env.into_iter().collect())
}

/// Every file this run loads on the host, by the path a later run loads it
/// by: the profile and what it inherits, the definitions of its reusable
/// hooks, its host hooks' programs, and antimony itself. A hook runs on the
/// host, often with more than the sandbox may: it must never execute a file
/// the sandbox could have written (the security rule of hooks).
fn loaded_files(fs: &dyn HostView, profile: &Profile, hooks: &[PlannedHook]) -> Vec<guard::Loaded> {
    use guard::{Loaded, What};
    let mut out: Vec<Loaded> = profile
        .read_from
        .iter()
        .map(|f| Loaded {
            path: f.path.clone(),
            what: match &f.inherited {
                None => What::Profile,
                Some(name) => What::Inherited(name.clone()),
            },
        })
        .collect();
    for h in hooks {
        if let Some(d) = &h.definition {
            out.push(Loaded {
                path: d.clone(),
                what: What::Definition(h.hook.label()),
            });
        }
        if h.hook.inside {
            continue;
        }
        out.push(Loaded {
            path: h.exec.clone(),
            what: match h.hook.command {
                // A companion is antimony, run again.
                HookCommand::Profile { .. } => What::Launcher,
                _ => What::Program(h.hook.label()),
            },
        });
    }
    if let Ok(exe) = fs.current_exe() {
        out.push(Loaded {
            path: exe,
            what: What::Launcher,
        });
    }
    out
}
