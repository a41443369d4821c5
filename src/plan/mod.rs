//! The plan: everything a run will do, decided before anything is started.
//!
//! `build` turns a resolved profile, the run options and the host facts into
//! a `Plan`: namespaces, the mount list, the Landlock rules, the seccomp
//! program, the program's argv and environment, and the hooks in the order
//! they will run. The plan is inert and printable (`--dry-run` prints it);
//! `sandbox::spawn` carries out its sandbox part and `hooks` its hooks.

pub mod dbus;
mod display;
pub mod guard;
pub mod landlock;
pub mod mounts;
pub mod seccomp;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::hooks::{dropins, library};
use crate::host::Host;
use crate::profile::validate::parse_host_path;
use crate::profile::{
    BindMode, EnvValue, FileEntry, HomePolicy, Hook, HookCommand, HookEvent, HostPath, Profile,
    ProgramRef, Searcher, ShareNamespace,
};
pub use landlock::LandlockPlan;
pub use mounts::{Mount, Op, Origin};
pub use seccomp::SeccompPlan;

/// How long a stopping hook without a `timeout` may run.
pub const STOPPING_TIMEOUT: Duration = Duration::from_secs(10);

/// The PATH programs see inside the sandbox, and where a bare program name
/// is looked up.
pub const SANDBOX_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
const SANDBOX_PATH_ROOT: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

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
    /// `--network` / `--no-network`
    pub network: Option<bool>,
    /// `--program PATH`
    pub program: Option<String>,
    /// Everything after `--`.
    pub args: Vec<OsString>,
}

/// The namespaces the sandbox gets. User, mount and PID are always new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Namespaces {
    pub ipc: bool,
    pub uts: bool,
    pub cgroup: bool,
    /// A new network namespace with only loopback.
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
            (self.net, "net (loopback only)"),
        ] {
            if on {
                v.push(name);
            }
        }
        v
    }
}

/// Where a hook comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookSource {
    Profile,
    DropIn(dropins::Scope),
}

/// A hook with its program found: what the hook runner executes.
#[derive(Debug, Clone)]
pub struct PlannedHook {
    /// The hook with every setting resolved (a `use` hook's from its
    /// definition, unless the profile set them).
    pub hook: Hook,
    /// The program to execute (for scripts: `/usr/bin/bash`). For hooks
    /// inside the sandbox, a path inside it.
    pub exec: PathBuf,
    /// Arguments after the program.
    pub args: Vec<OsString>,
    /// A reusable hook's configuration (its defaults and the profile's
    /// overrides); handed to the hook in its JSON input.
    pub config: toml::Table,
    /// The key under which the hook's state is kept (and its runs serialized).
    pub state_key: String,
    pub source: HookSource,
    /// A reusable hook's definition file (`None`: shipped, or not one).
    pub definition: Option<PathBuf>,
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
    pub mounts: Vec<Mount>,
    pub landlock: LandlockPlan,
    pub seccomp: Option<SeccompPlan>,
    pub nested_userns: bool,
    /// The session bus proxy, when the profile has a `[dbus]` table.
    pub dbus: Option<dbus::DbusPlan>,
    pub hooks: Vec<PlannedHook>,
    /// Files this run loads that its sandbox could reach, kept read-only
    /// and in place there (`guard`).
    pub guarded: Vec<guard::Guarded>,
    pub grace: Duration,
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
    #[error("{option} {value}: {message}")]
    Option {
        option: &'static str,
        value: String,
        message: String,
    },
    /// The sandbox could change a file a later run loads.
    #[error(transparent)]
    Exposed(#[from] Box<guard::Exposed>),
    /// `place`: `files` for a profile's entry, `--ro`/`--rw` for an option.
    #[error("{place}: `{entry}`: {message}")]
    Files {
        place: String,
        entry: String,
        message: String,
    },
    #[error(transparent)]
    Landlock(#[from] landlock::LandlockError),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
}

/// Builds the plan for one run.
pub fn build(profile: &Profile, opts: &RunOptions, host: &Host) -> Result<Plan, PlanError> {
    if profile.fragment {
        return Err(crate::profile::ProfileError::Fragment {
            name: profile.name.clone(),
        }
        .into());
    }
    let mut warnings = Vec::new();
    let home = host.home.clone();
    let sb = &profile.sandbox;
    let network = opts.network.unwrap_or(sb.network);
    let namespaces = Namespaces {
        ipc: !sb.share.contains(&ShareNamespace::Ipc),
        uts: !sb.share.contains(&ShareNamespace::Uts),
        cgroup: !sb.share.contains(&ShareNamespace::Cgroup),
        net: !network,
    };

    // The program and its arguments.
    let program = match &opts.program {
        Some(p) if p.contains('/') || p.starts_with('~') => {
            let path = parse_host_path(p).map_err(|message| PlanError::Option {
                option: "--program",
                value: p.clone(),
                message,
            })?;
            program_in_sandbox(&ProgramRef::Path(path), host)?
        }
        Some(name) => program_in_sandbox(&ProgramRef::Name(name.clone()), host)?,
        None => match profile.path.as_slice() {
            [] => program_in_sandbox(&ProgramRef::Name(profile.name.clone()), host)?,
            [one] => program_in_sandbox(one, host)?,
            // Alternatives: the first that exists (a path is taken as is
            // when it is last and nothing before it was found).
            many => {
                let found = many.iter().find_map(|p| match p {
                    ProgramRef::Name(_) => program_in_sandbox(p, host).ok(),
                    ProgramRef::Path(hp) => {
                        let path = hp.resolve(&host.home);
                        path.exists().then_some(path)
                    }
                });
                match found {
                    Some(p) => p,
                    None => {
                        return Err(PlanError::ProgramNotFound {
                            name: many
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(" or "),
                            path: sandbox_path(host.uid).to_string(),
                        });
                    }
                }
            }
        },
    };
    let mut argv: Vec<OsString> = vec![program.clone().into_os_string()];
    argv.extend(profile.arguments.iter().map(OsString::from));
    argv.extend(opts.args.iter().cloned());

    // The file system.
    let facts = mounts::BaseFacts::probe(host.uid, host.gid, &host.user, &home);
    let mut list = mounts::base(&facts, host.uid, network);
    let host_home = match profile.home.policy {
        HomePolicy::None => None,
        _ => Some(host.data_home.join("antimony").join(profile.home_name())),
    };
    list.push(Mount {
        dest: home.clone(),
        op: match (&profile.home.policy, &host_home) {
            (HomePolicy::Enabled, Some(h)) => Op::Bind {
                source: h.clone(),
                mode: BindMode::Rw,
                optional: false,
            },
            (HomePolicy::ReadOnly, Some(h)) => Op::Bind {
                source: h.clone(),
                mode: BindMode::Ro,
                optional: false,
            },
            (HomePolicy::Overlay, Some(h)) => Op::Overlay { lower: h.clone() },
            _ => Op::Tmpfs { mode: 0o700 },
        },
        origin: Origin::Home,
    });
    for entry in &profile.files {
        list.extend(file_entry(entry, host, Origin::Profile)?);
    }
    let runtime_bound = |list: &[Mount]| {
        host.runtime_dir.as_ref().is_some_and(|rt| {
            list.iter()
                .any(|m| matches!(&m.op, Op::Bind { source, .. } if rt.starts_with(source)))
        })
    };
    for (mode, values, option) in [
        (BindMode::Ro, &opts.ro, "--ro"),
        (BindMode::Rw, &opts.rw, "--rw"),
    ] {
        for value in values {
            let entry = cli_bind(mode, value, host).map_err(|message| PlanError::Option {
                option,
                value: value.clone(),
                message,
            })?;
            list.extend(file_entry(&entry, host, Origin::CommandLine)?);
        }
    }
    // The run's id names the bus socket, so it comes first.
    let instance = crate::pipeline::instance_id();
    let dbus = match &profile.dbus {
        Some(d) => match dbus::build(d, host, &instance) {
            Ok(plan) => {
                list.push(Mount {
                    dest: dbus::sandbox_socket(host.uid),
                    op: Op::Bind {
                        source: plan.socket.clone(),
                        mode: BindMode::Rw,
                        optional: false,
                    },
                    origin: Origin::Base,
                });
                Some(plan)
            }
            Err(w) => {
                warnings.push(w);
                None
            }
        },
        None => None,
    };
    // antimony's own folders are never a sandbox's, not even a part of one
    // (a bind above them gets them masked instead, below). Compared as
    // written and as the kernel resolves them: `/var/home/u` is `~` where
    // `/home` links to `var/home`.
    let protected: Vec<(PathBuf, PathBuf)> = host
        .protected_dirs()
        .into_iter()
        .map(|p| {
            let real = mounts::real_path(&p);
            (p, real)
        })
        .collect();
    for m in &list {
        let Op::Bind { source, .. } = &m.op else {
            continue;
        };
        if !matches!(m.origin, Origin::Profile | Origin::CommandLine) {
            continue;
        }
        let real = mounts::real_path(source);
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
                message: format!(
                    "it is inside {}, one of antimony's own folders, which no sandbox may see",
                    p.display()
                ),
            });
        }
    }
    if runtime_bound(&list) {
        warnings.push(
            "a bind gives the sandbox your whole runtime folder: every socket of your desktop, the raw session bus included (bind the sockets it needs instead)".into(),
        );
    }
    let masks = mounts::protect(&list, &protected);
    list.extend(masks);
    let mounts = mounts::finish(list);

    // The environment.
    let mut env = environment(profile, opts, host, &home)?;
    if dbus.is_some() {
        let address = format!("unix:path={}", dbus::sandbox_socket(host.uid).display());
        env.retain(|(k, _)| k != "DBUS_SESSION_BUS_ADDRESS");
        env.push(("DBUS_SESSION_BUS_ADDRESS".into(), address.into()));
        env.sort();
    }

    if x11_is_the_display(&mounts, &env) {
        warnings.push(
            "the display is X11, which cannot isolate input: the program can log your keystrokes, read and control other windows (prefer Wayland: inherit with-wayland only)".into(),
        );
    }

    // The working directory: the profile's, else where antimony was started
    // if that place is the same inside, else the home.
    let cwd = match &profile.dir {
        Some(d) => d.resolve(&home),
        None => host
            .cwd
            .clone()
            .filter(|c| visible_as_is(c, &mounts))
            .unwrap_or_else(|| home.clone()),
    };

    // Host abstract sockets exist in the sandbox only with the host's network.
    let abstract_sockets: &[String] = if network { &sb.abstract_sockets } else { &[] };
    let landlock = LandlockPlan::build(
        sb.landlock,
        landlock::probe_abi(),
        &mounts,
        abstract_sockets,
    )?;
    if sb.landlock != crate::profile::LandlockMode::Off && !landlock.enforced() {
        warnings.push("this kernel does not implement Landlock: its rules are not enforced".into());
    }
    let seccomp = if sb.seccomp {
        Some(SeccompPlan::build(sb.nested_userns)?)
    } else {
        None
    };

    let vars = library::Vars {
        profile: profile.name.clone(),
        home: match profile.home.policy {
            HomePolicy::Enabled | HomePolicy::Overlay => {
                host_home.as_ref().map(|h| h.display().to_string())
            }
            _ => None,
        },
        instance: instance.clone(),
    };
    let hooks = plan_hooks(profile, host, &vars, &mut warnings)?;
    // Nothing a run loads may be changed by its sandbox: guarded in place,
    // or the launch refused. (Landlock and the working folder above do not
    // depend on the guarding mounts.)
    let (guards, guarded) = guard::check(&mounts, || loaded_files(profile, &hooks))?;
    let mounts = if guards.is_empty() {
        mounts
    } else {
        let mut all = mounts;
        all.extend(guards);
        mounts::finish(all)
    };

    Ok(Plan {
        name: profile.name.clone(),
        instance,
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
        namespaces,
        mounts,
        landlock,
        seccomp,
        nested_userns: sb.nested_userns,
        dbus,
        hooks,
        guarded,
        grace: profile.grace,
        warnings,
    })
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
pub fn expand_path(p: &HostPath, host: &Host, in_sandbox: bool) -> Result<Option<PathBuf>, String> {
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
        return Err(format!(
            "`{s}` expands to `{}`, not an absolute path without `..`",
            out.display()
        ));
    }
    Ok(Some(out))
}

/// A `[files]` entry as a mount; `None` when an optional entry names an
/// unset variable.
fn file_entry(entry: &FileEntry, host: &Host, origin: Origin) -> Result<Option<Mount>, PlanError> {
    let err = |message: String| PlanError::Files {
        place: match (origin, entry) {
            (Origin::CommandLine, FileEntry::Bind { mode, .. }) => format!("--{}", mode.key()),
            _ => "files".into(),
        },
        entry: entry.written(),
        message,
    };
    let expand = |p: &HostPath, in_sandbox: bool| -> Result<Option<PathBuf>, PlanError> {
        expand_path(p, host, in_sandbox).map_err(err)
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
                    Err(err(
                        "a variable it names is not set (write `?` before it to skip it then)"
                            .into(),
                    ))
                };
            };
            // Checked here, where `$NAME` parts are known (validation
            // refuses a literal `/` with its position already).
            if dst == Path::new("/") {
                return Err(err("cannot mount over the sandbox's root `/`".into()));
            }
            // The raw session bus would bypass [dbus] and its filter.
            if let Some(rt) = &host.runtime_dir {
                if src == rt.join("bus") {
                    return Err(err(format!(
                        "{} is the raw session bus; give the sandbox the bus through [dbus], which filters it",
                        src.display()
                    )));
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
            Some(dst) if dst == Path::new("/") => {
                Err(err("cannot mount over the sandbox's root `/`".into()))
            }
            Some(dst) => Ok(Some(Mount {
                dest: dst,
                op: Op::Tmpfs { mode: 0o755 },
                origin,
            })),
            None => Err(err("a variable it names is not set".into())),
        },
    }
}

/// Parses `--ro`/`--rw`: `[?]HOST[=SANDBOX]`; a relative HOST is relative
/// to the current folder.
fn cli_bind(mode: BindMode, value: &str, host: &Host) -> Result<FileEntry, String> {
    let (optional, rest) = match value.strip_prefix('?') {
        Some(r) => (true, r),
        None => (false, value),
    };
    let (h, s) = rest.split_once('=').unwrap_or((rest, rest));
    let absolute = |p: &str| -> Result<HostPath, String> {
        if p.starts_with('/') || p.starts_with('~') {
            parse_host_path(p)
        } else {
            let cwd = host.cwd.clone().ok_or("the current folder is unknown")?;
            parse_host_path(&cwd.join(p).to_string_lossy())
        }
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
fn program_in_sandbox(p: &ProgramRef, host: &Host) -> Result<PathBuf, PlanError> {
    match p {
        ProgramRef::Path(path) => Ok(path.resolve(&host.home)),
        ProgramRef::Name(name) => {
            let path = sandbox_path(host.uid);
            find_in(name, path).ok_or_else(|| PlanError::ProgramNotFound {
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

/// The first executable file `name` in the folders of `path`.
pub fn find_in(name: &str, path: &str) -> Option<PathBuf> {
    path.split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
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
fn x11_is_the_display(mounts: &[Mount], env: &[(OsString, OsString)]) -> bool {
    let set = |k: &str| env.iter().any(|(n, v)| n == k && !v.is_empty());
    let socket = mounts.iter().any(|m| {
        m.dest == Path::new("/tmp/.X11-unix")
            && matches!(&m.op, Op::Bind { source, .. } if source.exists())
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
                message: "expected KEY=VALUE".into(),
            });
        };
        if k.is_empty() || k.contains('\0') || v.contains('\0') {
            return Err(PlanError::Option {
                option: "--env",
                value: item.clone(),
                message: "not a variable assignment".into(),
            });
        }
        // The same `$NAME` rule as in profiles.
        let value = crate::profile::validate::parse_env_value(v);
        apply(k, &value);
    }
    Ok(env.into_iter().collect())
}

/// Every hook of the run, event by event in the order they run: the
/// system's and the user's drop-ins around the profile's own.
fn plan_hooks(
    profile: &Profile,
    host: &Host,
    vars: &library::Vars,
    warnings: &mut Vec<String>,
) -> Result<Vec<PlannedHook>, PlanError> {
    let library = Searcher::hooks(host);
    let user_dropins = host.config_home.join("antimony/hooks.d");
    // Usually neither folder exists: one look each, not one per event.
    let system_dropins = Path::new(dropins::SYSTEM_DIR).is_dir();
    let user_dropins_exist = profile.user_dropins && user_dropins.is_dir();
    let mut out = Vec::new();
    for event in HookEvent::ALL {
        let mut system = Vec::new();
        let mut user = Vec::new();
        if system_dropins {
            let (found, w) = dropins::find(
                Path::new(dropins::SYSTEM_DIR),
                dropins::Scope::System,
                event,
                host.uid,
            );
            warnings.extend(w);
            system.extend(found.iter().map(|d| plan_dropin(d, event)));
        }
        if user_dropins_exist {
            let (found, w) = dropins::find(&user_dropins, dropins::Scope::User, event, host.uid);
            warnings.extend(w);
            user.extend(found.iter().map(|d| plan_dropin(d, event)));
        }
        let mut own = Vec::new();
        for (i, hook) in profile.hooks(event).enumerate() {
            own.push(plan_hook(hook, i + 1, host, &library, vars)?);
        }
        // The system's wrap the user's, which wrap the profile's.
        match event {
            HookEvent::Pre | HookEvent::Started => {
                out.extend(system);
                out.extend(user);
                out.extend(own);
            }
            HookEvent::Stopping | HookEvent::Post => {
                out.extend(own);
                out.extend(user);
                out.extend(system);
            }
        }
    }
    // A stop must end: stopping hooks without a timeout of their own get one.
    for h in &mut out {
        if h.hook.event == HookEvent::Stopping && h.hook.timeout.is_none() {
            h.hook.timeout = Some(STOPPING_TIMEOUT);
        }
    }
    Ok(out)
}

/// Every file this run loads on the host, by the path a later run loads it
/// by: the profile and what it inherits, the definitions of its reusable
/// hooks, its host hooks' programs, and antimony itself. A hook runs on the
/// host, often with more than the sandbox may: it must never execute a file
/// the sandbox could have written (the security rule of hooks).
fn loaded_files(profile: &Profile, hooks: &[PlannedHook]) -> Vec<guard::Loaded> {
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
    if let Ok(exe) = std::env::current_exe() {
        out.push(Loaded {
            path: exe,
            what: What::Launcher,
        });
    }
    out
}

fn plan_dropin(d: &dropins::DropIn, event: HookEvent) -> PlannedHook {
    PlannedHook {
        hook: Hook {
            event,
            name: Some(format!("{} drop-in {}", d.scope.key(), d.name)),
            command: HookCommand::Program {
                path: ProgramRef::Path(HostPath::Absolute(d.path.clone())),
                arguments: Vec::new(),
            },
            attach: false,
            identity: Default::default(),
            env: false,
            can_fail: false,
            on: Vec::new(),
            timeout: None,
            // Drop-ins serve every profile: they learn which from their input.
            stdin: true,
            inside: false,
            explicit: Default::default(),
            defined_at: d.path.display().to_string(),
        },
        exec: d.path.clone(),
        args: Vec::new(),
        config: toml::Table::new(),
        state_key: format!("dropin-{}-{}", d.scope.key(), safe_key(&d.name)),
        source: HookSource::DropIn(d.scope),
        definition: None,
    }
}

/// The state key of a hook inside the sandbox: in a folder of its own
/// (`inside/KEY`; a host hook's key never holds a `/`), so that what the
/// sandbox writes is never the state a host hook of the same name reads.
pub fn inside_state_key(key: &str) -> String {
    format!("inside/{key}")
}

/// A file-name-safe form of a hook's name.
fn safe_key(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn plan_hook(
    hook: &Hook,
    index: usize,
    host: &Host,
    library: &Searcher,
    vars: &library::Vars,
) -> Result<PlannedHook, PlanError> {
    let mut hook = hook.clone();
    let mut config = toml::Table::new();
    let mut definition = None;
    let state_key = match (&hook.name, &hook.command) {
        (Some(name), _) => safe_key(name),
        (None, HookCommand::Use { name, .. }) => safe_key(name),
        (None, _) => format!("{}-{index}", hook.event.key()),
    };
    let state_key = if hook.inside {
        inside_state_key(&state_key)
    } else {
        state_key
    };
    // A reusable hook becomes the program or script its definition names.
    if let HookCommand::Use {
        name,
        config: overrides,
    } = &hook.command
    {
        let def = library::load(library, name, &hook.defined_at)?;
        let inst = def.instantiate(hook.event, overrides, vars, &hook.defined_at)?;
        // An unnamed `use` hook is named after its definition (in messages,
        // records, its JSON input and a script's `$0`), not "script".
        if hook.name.is_none() {
            hook.name = Some(name.clone());
        }
        hook.command = match (inst.path, inst.content) {
            (Some(path), _) => HookCommand::Program {
                path: ProgramRef::Path(parse_host_path(&path).map_err(|m| {
                    crate::profile::ProfileError::Definition {
                        file: def.file.clone(),
                        message: m,
                    }
                })?),
                arguments: inst.arguments,
            },
            (None, Some(content)) => HookCommand::Script {
                content,
                arguments: inst.arguments,
            },
            (None, None) => unreachable!("a definition's command has a path or content"),
        };
        let e = hook.explicit;
        if !e.identity {
            hook.identity = inst.system.unwrap_or_default();
        }
        if !e.env {
            hook.env = inst.env.unwrap_or(false);
        }
        if !e.can_fail {
            hook.can_fail = inst.can_fail.unwrap_or(false);
        }
        if !e.timeout {
            hook.timeout = inst.timeout;
        }
        if !e.stdin {
            hook.stdin = inst.stdin.unwrap_or(false);
        }
        if !e.on && hook.event == HookEvent::Post {
            hook.on = inst.on.unwrap_or_default();
        }
        config = inst.config;
        definition = def.path;
    }
    let (exec, args) = match &hook.command {
        HookCommand::Program { path, arguments } => {
            let exec = match (path, hook.inside) {
                (ProgramRef::Path(p), _) => p.resolve(&host.home),
                (ProgramRef::Name(name), true) => find_in(name, sandbox_path(host.uid))
                    .ok_or_else(|| PlanError::HookProgramNotFound {
                        hook: hook.label(),
                        name: name.clone(),
                    })?,
                (ProgramRef::Name(name), false) => {
                    let host_path = host
                        .var("PATH")
                        .map(|p| p.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
                    find_in(name, &host_path).ok_or_else(|| PlanError::HookProgramNotFound {
                        hook: hook.label(),
                        name: name.clone(),
                    })?
                }
            };
            (exec, arguments.iter().map(OsString::from).collect())
        }
        HookCommand::Script { content, arguments } => {
            let mut args: Vec<OsString> = vec!["-c".into(), content.into()];
            args.push(
                hook.name
                    .clone()
                    .unwrap_or_else(|| format!("antimony-{}-hook", hook.event.key()))
                    .into(),
            );
            args.extend(arguments.iter().map(OsString::from));
            (PathBuf::from("/usr/bin/bash"), args)
        }
        HookCommand::Profile { name, arguments } => {
            // The companion is another antimony run; it finds its profile
            // through the same environment.
            hook.env = true;
            let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("antimony"));
            let mut args: Vec<OsString> = vec!["run".into(), name.into(), "--".into()];
            args.extend(arguments.iter().map(OsString::from));
            (exe, args)
        }
        HookCommand::Use { .. } => unreachable!("resolved above"),
    };
    Ok(PlannedHook {
        hook,
        exec,
        args,
        config,
        state_key,
        source: HookSource::Profile,
        definition,
    })
}
