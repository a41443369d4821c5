//! The TOML as written: serde structs that mirror the profile file one to one.
//!
//! Every struct denies unknown fields, so a typo is an error with a position
//! instead of a silently ignored key. Values that validation may reject later
//! are wrapped in `Spanned` so that the error can point at them. Nothing here
//! is interpreted: `validate` turns these into the model the rest of the code
//! uses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::Spanned;

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fragment: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<Spanned<ProgramSpec>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Vec<Spanned<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inherits: Option<Vec<Spanned<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub home: Option<RawHome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<RawFiles>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<BTreeMap<String, Spanned<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<RawSandbox>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dbus: Option<RawDbus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hooks: Option<RawHooks>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<RawLimits>,
}

/// Resource limits of the sandbox. Every key has a default (the plan's);
/// a profile sets those it wants otherwise.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Processes and threads of the sandbox's user (RLIMIT_NPROC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processes: Option<Spanned<i64>>,
    /// Open files per process (RLIMIT_NOFILE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_files: Option<Spanned<i64>>,
    /// Whether a crashing program may dump core (default false: RLIMIT_CORE 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub core_dumps: Option<bool>,
    /// All the sandbox's tmpfs together: `"2G"`, or bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<Spanned<RawSize>>,
    /// The cgroup v2 memory bound (`memory.max`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Spanned<RawSize>>,
    /// The cgroup v2 CPU bound, `"200%"` for two CPUs (`cpu.max`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Spanned<String>>,
}

/// A size: `"512M"`, `"2G"` (binary units), or a number of bytes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawSize {
    Bytes(i64),
    Text(String),
}

/// The session bus, through a filtering proxy (xdg-dbus-proxy). Without
/// this table the sandbox has no bus at all; with it, only what it lists.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDbus {
    /// Names the sandbox may see (in lists, and their signals).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub see: Option<Vec<Spanned<String>>>,
    /// Names the sandbox may call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub talk: Option<Vec<Spanned<String>>>,
    /// Names the sandbox may own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub own: Option<Vec<Spanned<String>>>,
    /// `NAME=RULE`: only these calls on NAME.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<Vec<Spanned<String>>>,
    /// `NAME=RULE`: only these broadcasts from NAME.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<Vec<Spanned<String>>>,
}

/// `path = "prog"`, or a list of alternatives tried in order
/// (`["firefox", "firefox-esr"]`): the first one found is used.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ProgramSpec {
    One(String),
    Any(Vec<String>),
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHome {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<HomePolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Spanned<String>>,
}

/// What the sandbox gets as its home folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum HomePolicy {
    /// No host folder: an empty private home that vanishes at exit.
    #[default]
    None,
    /// A persistent private home under `$XDG_DATA_HOME/antimony/NAME`.
    Enabled,
    /// That persistent home, read-only.
    ReadOnly,
    /// That persistent home under an overlay whose writes vanish at exit.
    Overlay,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawFiles {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ro: Option<Vec<Spanned<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rw: Option<Vec<Spanned<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev: Option<Vec<Spanned<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<Vec<Spanned<String>>>,
    /// Bind, read-only, the program's own `/etc/NAME` and the top-level
    /// `/etc` folders of the Debian package that ships it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package_config: Option<bool>,
    /// Host files and folders that the program's arguments name: made
    /// visible in the sandbox (`ro`, the default), writable, or not at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward: Option<ForwardMode>,
}

/// What becomes of host files and folders the program's arguments name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMode {
    /// Bound read-only at the same path.
    #[default]
    Ro,
    /// Bound writable at the same path.
    Rw,
    /// Not forwarded.
    Off,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSandbox {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkMode>,
    /// TCP ports of the host forwarded into an isolated sandbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_ports: Option<Vec<Spanned<u16>>>,
    /// An isolated sandbox may reach the local network (private ranges).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_network: Option<bool>,
    /// Landlock's port rules: the TCP ports the sandbox may connect to and
    /// bind (absent: no rule; empty: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_connect: Option<Vec<u16>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_bind: Option<Vec<u16>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<Vec<ShareNamespace>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub landlock: Option<LandlockMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nested_userns: Option<bool>,
    /// Abstract unix sockets of the host the sandbox may connect to, by
    /// name (`@/tmp/.X11-unix/X0`), with `network = "host"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abstract_sockets: Option<Vec<Spanned<String>>>,
    /// One instance per user: a later `antimony run` runs its command in
    /// the running instance instead of starting another.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub single_instance: Option<bool>,
}

/// Namespaces a profile may share with the host by name. The user, mount and
/// PID namespaces are the sandbox itself and cannot be shared; the network
/// namespace is `network = "host"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ShareNamespace {
    Ipc,
    Uts,
    Cgroup,
}

/// The sandbox's network (`network`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// `false`: a network namespace of its own with loopback only.
    #[default]
    Off,
    /// `"isolated"` (and `true`): a network namespace of its own, connected
    /// to the outside by pasta: the internet, not the host's loopback nor
    /// (by default) the local network.
    Isolated,
    /// `"host"`: the host's network namespace, everything the host reaches.
    Host,
}

impl NetworkMode {
    /// The sandbox reaches a network beyond its loopback.
    pub fn any(self) -> bool {
        self != NetworkMode::Off
    }

    pub fn key(self) -> &'static str {
        match self {
            NetworkMode::Off => "false",
            NetworkMode::Isolated => "isolated",
            NetworkMode::Host => "host",
        }
    }
}

impl Serialize for NetworkMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            NetworkMode::Off => s.serialize_bool(false),
            m => s.serialize_str(m.key()),
        }
    }
}

impl<'de> Deserialize<'de> for NetworkMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const EXPECTED: &str = "false, \"isolated\" or \"host\" (true is \"isolated\")";
        impl serde::de::Visitor<'_> for V {
            type Value = NetworkMode;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<NetworkMode, E> {
                // `true` predates the modes: it means a network, and the
                // safe one. The host's is always spelled out.
                Ok(if v {
                    NetworkMode::Isolated
                } else {
                    NetworkMode::Off
                })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<NetworkMode, E> {
                match v {
                    "isolated" => Ok(NetworkMode::Isolated),
                    "host" => Ok(NetworkMode::Host),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &EXPECTED)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// How Landlock is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LandlockMode {
    /// Enforce what the kernel supports; say which ABI in `--dry-run`.
    #[default]
    BestEffort,
    /// Refuse to start unless the kernel enforces every right antimony asks for.
    Strict,
    /// No Landlock ruleset.
    Off,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHooks {
    /// Seconds an attached hook gets between SIGTERM and SIGKILL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace: Option<Spanned<f64>>,
    /// Whether the user's drop-in hooks (`hooks.d/EVENT/`) run for this
    /// profile (default true). The system's always run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_dropins: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre: Option<Vec<Spanned<RawHook>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<Vec<Spanned<RawHook>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopping: Option<Vec<Spanned<RawHook>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post: Option<Vec<Spanned<RawHook>>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHook {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Vec<String>>,
    /// A reusable hook (`hooks/NAME.toml`) instead of `path`/`content`.
    #[serde(rename = "use", skip_serializing_if = "Option::is_none")]
    pub uses: Option<String>,
    /// Overrides of the reusable hook's `config`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<toml::Table>,
    /// Another profile, run by antimony as a companion sandbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attach: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<Identity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_fail: Option<bool>,
    /// The seed's prose spells `can_fail` as `no_fail` once; accepted as an alias.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_fail: Option<bool>,
    /// Post-hooks: the outcomes they run on (default: always).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on: Option<Vec<RawCondition>>,
    /// Seconds before the hook is stopped (SIGTERM, then SIGKILL after the grace period).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    /// Write a JSON description of the run to the hook's stdin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdin: Option<bool>,
    /// Started hooks: run inside the sandbox, with its confinement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inside: Option<bool>,
}

/// An entry of a post-hook's `on`: an outcome name or an exit status.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawCondition {
    Name(String),
    Code(i64),
}

/// Whose identity a hook runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum Identity {
    /// The invoking user; as root on behalf of someone (sudo, pkexec), that user.
    #[default]
    User,
    /// antimony's own identity.
    System,
}
