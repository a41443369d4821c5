//! The validated profile: what the planner and the hook runner see.
//!
//! Paths keep a leading `~` symbolically (`HostPath::Home`) so that the model
//! does not depend on who runs it; the planner expands them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use super::raw::{
    ForwardMode, HomePolicy, Identity, LandlockMode, NetworkMode, ShareNamespace,
};

/// A path as a profile writes it: absolute, or relative to the home folder.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum HostPath {
    Absolute(PathBuf),
    /// `~` (empty) or `~/rest`.
    Home(PathBuf),
    /// A `[files]` path with `$NAME` components (`$XDG_RUNTIME_DIR/$WAYLAND_DISPLAY`),
    /// as written; expanded when a run is planned (`plan::expand_path`).
    Vars(String),
}

impl HostPath {
    /// Resolves against a home folder.
    pub fn resolve(&self, home: &Path) -> PathBuf {
        match self {
            HostPath::Absolute(p) => p.clone(),
            HostPath::Home(rest) if rest.as_os_str().is_empty() => home.to_path_buf(),
            HostPath::Home(rest) => home.join(rest),
            // Only `[files]` entries have variables, and they are expanded
            // with the host's values by the planner, never here.
            HostPath::Vars(s) => PathBuf::from(s),
        }
    }
}

impl fmt::Display for HostPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPath::Absolute(p) => write!(f, "{}", p.display()),
            HostPath::Home(rest) if rest.as_os_str().is_empty() => write!(f, "~"),
            HostPath::Home(rest) => write!(f, "~/{}", rest.display()),
            HostPath::Vars(s) => f.write_str(s),
        }
    }
}

/// A program: a path, or a bare name looked up on PATH when the run is planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramRef {
    Path(HostPath),
    Name(String),
}

impl fmt::Display for ProgramRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProgramRef::Path(p) => p.fmt(f),
            ProgramRef::Name(n) => f.write_str(n),
        }
    }
}

/// How a host path is mounted into the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BindMode {
    /// Read-only, nosuid, nodev.
    Ro,
    /// Read-write, nosuid, nodev.
    Rw,
    /// Read-write with device access, nosuid.
    Dev,
}

impl BindMode {
    pub fn key(self) -> &'static str {
        match self {
            BindMode::Ro => "ro",
            BindMode::Rw => "rw",
            BindMode::Dev => "dev",
        }
    }
}

/// One entry of `[files]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileEntry {
    Bind {
        mode: BindMode,
        source: HostPath,
        dest: HostPath,
        /// Written with a leading `?`: a missing source is skipped, not an error.
        optional: bool,
    },
    Tmpfs {
        dest: HostPath,
    },
}

impl FileEntry {
    pub fn dest(&self) -> &HostPath {
        match self {
            FileEntry::Bind { dest, .. } | FileEntry::Tmpfs { dest } => dest,
        }
    }

    /// The entry as a profile writes it (the inverse of parsing).
    pub fn written(&self) -> String {
        match self {
            FileEntry::Bind {
                source,
                dest,
                optional,
                ..
            } => {
                let q = if *optional { "?" } else { "" };
                if source == dest {
                    format!("{q}{source}")
                } else {
                    format!("{q}{source}={dest}")
                }
            }
            FileEntry::Tmpfs { dest } => dest.to_string(),
        }
    }
}

/// A value of `[environment]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    Literal(String),
    /// `"$NAME"`: the host's value of NAME, or unset when the host has none.
    FromHost(String),
}

impl EnvValue {
    pub fn written(&self) -> String {
        match self {
            EnvValue::Literal(s) => s.clone(),
            EnvValue::FromHost(name) => format!("${name}"),
        }
    }
}

/// What a hook runs.
#[derive(Debug, Clone, PartialEq)]
pub enum HookCommand {
    /// `path` with its `arguments`: a program, run directly (never through a shell).
    Program {
        path: ProgramRef,
        arguments: Vec<String>,
    },
    /// `content`: a script run by `/usr/bin/bash -c CONTENT NAME ARGUMENTS...`,
    /// so `$0` is the hook's name and `$1`… its arguments.
    Script {
        content: String,
        arguments: Vec<String>,
    },
    /// `use`: a reusable hook defined in `hooks/NAME.toml`, with `config`
    /// overrides. Resolved when the run is planned.
    Use { name: String, config: toml::Table },
    /// `profile`: another profile, run by antimony as a companion sandbox
    /// with these arguments for its program.
    Profile {
        name: String,
        arguments: Vec<String>,
    },
}

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookEvent {
    /// On the host, before the sandbox starts (Antimony's pre-hooks).
    Pre,
    /// The program is running; never blocks it.
    Started,
    /// antimony is about to stop the sandbox (a signal, `antimony stop`);
    /// runs before the program gets SIGTERM.
    Stopping,
    /// After the sandbox has exited (Antimony's post-hooks).
    Post,
}

impl HookEvent {
    pub const ALL: [HookEvent; 4] = [
        HookEvent::Pre,
        HookEvent::Started,
        HookEvent::Stopping,
        HookEvent::Post,
    ];

    pub fn key(self) -> &'static str {
        match self {
            HookEvent::Pre => "pre",
            HookEvent::Started => "started",
            HookEvent::Stopping => "stopping",
            HookEvent::Post => "post",
        }
    }
}

/// An outcome a post-hook can ask to run on (`on = [...]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// The program exited with status 0.
    Ok,
    /// The program exited with a status other than 0.
    NonZero,
    /// The program was killed by a signal.
    Signal,
    /// The program never ran (a pre-hook or the set-up failed).
    LaunchFailed,
    /// antimony's exit status is this number (128+N for signal N).
    Code(u8),
}

impl Condition {
    pub fn written(self) -> String {
        match self {
            Condition::Ok => "ok".into(),
            Condition::NonZero => "non-zero".into(),
            Condition::Signal => "signal".into(),
            Condition::LaunchFailed => "launch-failed".into(),
            Condition::Code(c) => c.to_string(),
        }
    }
}

/// Which settings a `use` hook sets itself; the rest come from the
/// reusable hook's definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Explicit {
    pub identity: bool,
    pub env: bool,
    pub can_fail: bool,
    pub timeout: bool,
    pub stdin: bool,
    pub on: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    pub event: HookEvent,
    pub name: Option<String>,
    pub command: HookCommand,
    pub attach: bool,
    pub identity: Identity,
    pub env: bool,
    pub can_fail: bool,
    /// Post-hooks: run only on these outcomes (empty: always).
    pub on: Vec<Condition>,
    pub timeout: Option<Duration>,
    /// Write the run's JSON description to stdin.
    pub stdin: bool,
    /// Started hooks: run inside the sandbox.
    pub inside: bool,
    pub explicit: Explicit,
    /// Where the hook is defined (`file:line:column`), for messages.
    pub defined_at: String,
}

impl Hook {
    /// How messages name the hook: its `name`, else what it runs.
    pub fn label(&self) -> String {
        let event = self.event.key();
        match (&self.name, &self.command) {
            (Some(name), _) => format!("{event}-hook `{name}`"),
            (None, HookCommand::Program { path, .. }) => {
                format!("{event}-hook `{path}` ({})", self.defined_at)
            }
            (None, HookCommand::Script { .. }) => {
                format!("{event}-hook script ({})", self.defined_at)
            }
            (None, HookCommand::Use { name, .. }) => format!("{event}-hook `{name}`"),
            (None, HookCommand::Profile { name, .. }) => {
                format!("{event}-hook companion `{name}`")
            }
        }
    }

    /// Whether a post-hook runs for this outcome.
    pub fn runs_on(&self, outcome: &Outcome) -> bool {
        self.on.is_empty() || self.on.iter().any(|c| outcome.matches(*c))
    }
}

/// How the program ended, for `on` conditions and the hooks' JSON input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    Signaled(i32),
    LaunchFailed(String),
}

impl Outcome {
    pub fn matches(&self, c: Condition) -> bool {
        match (self, c) {
            (Outcome::Exited(0), Condition::Ok) => true,
            (Outcome::Exited(n), Condition::NonZero) => *n != 0,
            (Outcome::Signaled(_), Condition::Signal) => true,
            (Outcome::LaunchFailed(_), Condition::LaunchFailed) => true,
            (Outcome::Exited(n), Condition::Code(c)) => *n == i32::from(c),
            (Outcome::Signaled(s), Condition::Code(c)) => 128 + *s == i32::from(c),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Home {
    pub policy: HomePolicy,
    /// The folder name under `$XDG_DATA_HOME/antimony/`; default: the profile's name.
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSettings {
    pub network: NetworkMode,
    /// TCP ports of the host forwarded into an isolated sandbox.
    pub forward_ports: Vec<u16>,
    /// An isolated sandbox may reach the local network.
    pub local_network: bool,
    /// Landlock's port rules (`None`: TCP connect / bind not restricted).
    pub tcp_connect: Option<Vec<u16>>,
    pub tcp_bind: Option<Vec<u16>>,
    pub share: BTreeSet<ShareNamespace>,
    pub seccomp: bool,
    pub landlock: LandlockMode,
    pub nested_userns: bool,
    /// Host abstract unix sockets the profile asks for (`@NAME`). Landlock
    /// scopes abstract sockets as a whole: naming any lifts the scope, with
    /// `network = "host"` (otherwise, the sandbox's network namespace has
    /// none of the host's).
    pub abstract_sockets: Vec<String>,
    /// A later run joins the running instance (`single_instance`).
    pub single_instance: bool,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        SandboxSettings {
            network: NetworkMode::Off,
            forward_ports: Vec::new(),
            local_network: false,
            tcp_connect: None,
            tcp_bind: None,
            share: BTreeSet::new(),
            seccomp: true,
            landlock: LandlockMode::BestEffort,
            nested_userns: false,
            abstract_sockets: Vec::new(),
            single_instance: false,
        }
    }
}

/// The session bus policy (`[dbus]`), for xdg-dbus-proxy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dbus {
    pub see: Vec<String>,
    pub talk: Vec<String>,
    pub own: Vec<String>,
    /// `NAME=RULE`
    pub call: Vec<String>,
    /// `NAME=RULE`
    pub broadcast: Vec<String>,
}

/// `[limits]` as the profile sets them; `None`: the default (decided by
/// the plan, which knows the host: `plan::limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Processes and threads (RLIMIT_NPROC).
    pub processes: Option<u64>,
    /// Open files per process (RLIMIT_NOFILE).
    pub open_files: Option<u64>,
    pub core_dumps: Option<bool>,
    /// Bytes, for all the sandbox's tmpfs together.
    pub tmpfs: Option<u64>,
    /// Bytes (cgroup v2 `memory.max`).
    pub memory: Option<u64>,
    /// Percent of one CPU (cgroup v2 `cpu.max`).
    pub cpu: Option<u32>,
}

/// The default time attached hooks get between SIGTERM and SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3);

/// A fully resolved profile: its own values over everything it inherits.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    pub description: Option<String>,
    pub id: Option<String>,
    pub fragment: bool,
    /// A base for other profiles, runnable itself: its `path` and
    /// `arguments` are its own, never inherited (`minimal`).
    pub base: bool,
    /// The program, as written; several are alternatives, the first found
    /// wins (empty: the profile's name on the sandbox PATH).
    pub path: Vec<ProgramRef>,
    pub arguments: Vec<String>,
    /// Working directory inside the sandbox.
    pub dir: Option<HostPath>,
    pub home: Home,
    pub files: Vec<FileEntry>,
    /// Host files the program's arguments name (`files.forward`).
    pub forward: ForwardMode,
    /// `[files] package_config`: the program's own `/etc` configuration,
    /// found when the run is planned (`plan::package`).
    pub package_config: bool,
    pub environment: BTreeMap<String, EnvValue>,
    pub sandbox: SandboxSettings,
    /// `None`: no session bus in the sandbox.
    pub dbus: Option<Dbus>,
    pub grace: Duration,
    pub hooks: Vec<Hook>,
    /// Whether the user's drop-in hooks run for this profile.
    pub user_dropins: bool,
    pub limits: Limits,
    /// The profiles merged under this one, in merge order (for `show`).
    pub inherited: Vec<String>,
    /// Which layer's file set each single value (`path`,
    /// `sandbox.network`, `environment.LANG`…), for `show`.
    pub set_by: std::collections::BTreeMap<String, String>,
    /// The files it was read from (none for a shipped profile), for the
    /// check that no sandbox of the run can change them.
    pub read_from: Vec<ProfileFile>,
}

/// A file a profile was read from: its own, or one it inherits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileFile {
    /// The path the next run will read it by (as named, made absolute;
    /// links on the way not resolved: they are part of the way).
    pub path: PathBuf,
    /// `None` for the profile itself; the name of an inherited one.
    pub inherited: Option<String>,
}

impl Profile {
    pub fn hooks(&self, event: HookEvent) -> impl Iterator<Item = &Hook> {
        self.hooks.iter().filter(move |h| h.event == event)
    }

    /// The home folder's name under `$XDG_DATA_HOME/antimony/`.
    pub fn home_name(&self) -> &str {
        self.home.name.as_deref().unwrap_or(&self.name)
    }
}
