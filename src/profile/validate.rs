//! From the raw TOML of one file to a validated `Layer`: every value checked,
//! every error positioned at the value that caused it.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::model::*;
use super::raw::{RawCondition, RawHook, RawProfile};
use super::{Location, ProfileError, Source, is_path_argument, valid_name};

/// One profile file, validated but not merged: every setting is optional so
/// that merging can tell "not set" from "set to the default".
#[derive(Debug, Clone, Default)]
pub struct Layer {
    pub name: String,
    pub file: String,
    pub description: Option<String>,
    pub id: Option<String>,
    pub fragment: Option<bool>,
    pub base: Option<bool>,
    pub path: Option<Vec<ProgramRef>>,
    pub arguments: Option<Vec<String>>,
    pub dir: Option<HostPath>,
    pub inherits: Vec<(String, Location)>,
    pub home_policy: Option<HomePolicy>,
    pub home_name: Option<String>,
    pub files: Vec<FileEntry>,
    pub forward: Option<ForwardMode>,
    pub package_config: Option<bool>,
    pub environment: BTreeMap<String, EnvValue>,
    pub network: Option<NetworkMode>,
    pub forward_ports: Option<Vec<u16>>,
    pub local_network: Option<bool>,
    pub tcp_connect: Option<Vec<u16>>,
    pub tcp_bind: Option<Vec<u16>>,
    pub share: Option<BTreeSet<ShareNamespace>>,
    pub seccomp: Option<bool>,
    pub landlock: Option<LandlockMode>,
    pub nested_userns: Option<bool>,
    pub abstract_sockets: Vec<String>,
    pub single_instance: Option<bool>,
    pub dbus: Option<Dbus>,
    pub grace: Option<Duration>,
    pub user_dropins: Option<bool>,
    pub hooks: Vec<Hook>,
    pub limits: Limits,
}

/// `@NAME`, as `ss -x` writes an abstract unix socket: NAME fills the rest
/// of `sun_path` after its leading NUL (107 bytes at most). A final `*`
/// stands for any end (`@/tmp/.X11-unix/X*`, whatever the display).
fn abstract_socket_name(v: &str) -> bool {
    v.strip_prefix('@').is_some_and(|n| {
        let stem = n.strip_suffix('*').unwrap_or(n);
        (1..=107).contains(&n.len()) && !stem.contains(['\0', '*'])
    })
}

/// Parses a profile's TOML; syntax errors, unknown keys and wrong types come
/// back with the file, line and column.
pub fn parse(source: &Source) -> Result<RawProfile, ProfileError> {
    toml::from_str::<RawProfile>(&source.text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        ProfileError::Invalid {
            at: Location::at(&source.file_label(), &source.text, offset),
            message: e.message().trim().to_string(),
        }
    })
}

/// Parses and validates one file.
pub fn load_layer(source: &Source) -> Result<Layer, ProfileError> {
    let raw = parse(source)?;
    validate(raw, source)
}

struct Ctx<'a> {
    file: String,
    text: &'a str,
}

impl Ctx<'_> {
    fn at(&self, span: Range<usize>) -> Location {
        Location::at(&self.file, self.text, span.start)
    }

    fn err(&self, span: Range<usize>, message: impl Into<String>) -> ProfileError {
        ProfileError::Invalid {
            at: self.at(span),
            message: message.into(),
        }
    }
}

/// Validates one parsed file.
pub fn validate(raw: RawProfile, source: &Source) -> Result<Layer, ProfileError> {
    let cx = Ctx {
        file: source.file_label(),
        text: &source.text,
    };
    let mut layer = Layer {
        name: source.name.clone(),
        file: cx.file.clone(),
        fragment: raw.fragment,
        base: raw.base,
        ..Layer::default()
    };

    if let Some(d) = raw.description {
        if d.get_ref().contains(['\n', '\0']) {
            return Err(cx.err(d.span(), "description: must be one line of text"));
        }
        layer.description = Some(d.into_inner());
    }
    if let Some(id) = raw.id {
        let valid = !id.get_ref().is_empty()
            && id
                .get_ref()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid {
            return Err(cx.err(
                id.span(),
                format!(
                    "id: `{}` is not a desktop id (letters, digits, `.`, `_`, `-`)",
                    id.get_ref()
                ),
            ));
        }
        layer.id = Some(id.into_inner());
    }
    if let Some(path) = raw.path {
        let span = path.span();
        let list = match path.into_inner() {
            super::raw::ProgramSpec::One(p) => vec![p],
            super::raw::ProgramSpec::Any(list) if !list.is_empty() => list,
            super::raw::ProgramSpec::Any(_) => {
                return Err(cx.err(span, "path: name at least one program"));
            }
        };
        let mut refs = Vec::new();
        for p in list {
            refs.push(program_ref(&cx, &Spanned::new(span.clone(), p), "path")?);
        }
        layer.path = Some(refs);
    }
    if let Some(args) = raw.arguments {
        let mut list = Vec::with_capacity(args.len());
        for a in args {
            if a.get_ref().contains('\0') {
                return Err(cx.err(a.span(), "arguments: contains a NUL character"));
            }
            list.push(a.into_inner());
        }
        layer.arguments = Some(list);
    }
    if let Some(dir) = raw.dir {
        layer.dir = Some(host_path(&cx, dir.get_ref(), dir.span(), "dir")?);
    }
    for entry in raw.inherits.unwrap_or_default() {
        let name = entry.get_ref();
        if !is_path_argument(name) && !valid_name(name) {
            return Err(ProfileError::BadName {
                name: name.clone(),
                at: Some(cx.at(entry.span())),
            });
        }
        layer.inherits.push((name.clone(), cx.at(entry.span())));
    }
    if let Some(home) = raw.home {
        layer.home_policy = home.policy;
        if let Some(name) = home.name {
            if !valid_home_name(name.get_ref()) {
                return Err(cx.err(
                    name.span(),
                    format!(
                        "home.name: `{}` must be a relative folder name without `..`",
                        name.get_ref()
                    ),
                ));
            }
            layer.home_name = Some(name.into_inner());
        }
    }
    if let Some(files) = raw.files {
        layer.forward = files.forward;
        layer.package_config = files.package_config;
        for (mode, list) in [
            (BindMode::Ro, files.ro),
            (BindMode::Rw, files.rw),
            (BindMode::Dev, files.dev),
        ] {
            for entry in list.unwrap_or_default() {
                layer.files.push(bind_entry(&cx, mode, &entry)?);
            }
        }
        for entry in files.tmpfs.unwrap_or_default() {
            let dest = files_path(&cx, entry.get_ref(), entry.span(), "files.tmpfs")?;
            check_dest(&cx, &dest, entry.span(), "files.tmpfs")?;
            layer.files.push(FileEntry::Tmpfs { dest });
        }
    }
    for (key, value) in raw.environment.unwrap_or_default() {
        if key.is_empty() || key.contains(['=', '\0']) {
            return Err(cx.err(
                value.span(),
                format!("environment: `{key}` is not a variable name"),
            ));
        }
        layer.environment.insert(key, env_value(&cx, &value)?);
    }
    if let Some(sb) = raw.sandbox {
        layer.network = sb.network;
        if let Some(ports) = sb.forward_ports {
            let mut list = Vec::new();
            for p in ports {
                if *p.get_ref() == 0 {
                    return Err(cx.err(
                        p.span(),
                        "sandbox.forward_ports: port 0 is no port to forward".to_string(),
                    ));
                }
                list.push(*p.get_ref());
            }
            layer.forward_ports = Some(list);
        }
        layer.local_network = sb.local_network;
        layer.tcp_connect = sb.tcp_connect;
        layer.tcp_bind = sb.tcp_bind;
        layer.share = sb.share.map(|s| s.into_iter().collect());
        layer.seccomp = sb.seccomp;
        layer.landlock = sb.landlock;
        layer.nested_userns = sb.nested_userns;
        layer.single_instance = sb.single_instance;
        for entry in sb.abstract_sockets.unwrap_or_default() {
            let v = entry.get_ref();
            if !abstract_socket_name(v) {
                return Err(cx.err(
                    entry.span(),
                    format!(
                        "sandbox.abstract_sockets: `{v}` is not an abstract socket name (`@` then 1 to 107 bytes, a final `*` for any end, like @/tmp/.X11-unix/X0 or @/tmp/.X11-unix/X*)"
                    ),
                ));
            }
            layer.abstract_sockets.push(v.clone());
        }
    }
    if let Some(dbus) = raw.dbus {
        let mut d = Dbus::default();
        for (key, list, out, rule) in [
            ("see", dbus.see, &mut d.see, false),
            ("talk", dbus.talk, &mut d.talk, false),
            ("own", dbus.own, &mut d.own, false),
            ("call", dbus.call, &mut d.call, true),
            ("broadcast", dbus.broadcast, &mut d.broadcast, true),
        ] {
            for entry in list.unwrap_or_default() {
                let v = entry.get_ref();
                let ok = if rule {
                    v.split_once('=')
                        .is_some_and(|(n, r)| bus_name(n) && bus_rule(r))
                } else {
                    bus_name(v)
                };
                if !ok {
                    return Err(cx.err(
                        entry.span(),
                        format!(
                            "dbus.{key}: `{v}` is not {}",
                            if rule {
                                "NAME=RULE (a bus name, `=`, then INTERFACE.METHOD@/PATH with `*` allowed)"
                            } else {
                                "a bus name (like org.freedesktop.Notifications, or org.mpris.MediaPlayer2.*)"
                            }
                        ),
                    ));
                }
                out.push(v.clone());
            }
        }
        layer.dbus = Some(d);
    }
    if let Some(hooks) = raw.hooks {
        if let Some(grace) = hooks.grace {
            let secs = *grace.get_ref();
            if !secs.is_finite() || !(0.0..=3600.0).contains(&secs) {
                return Err(cx.err(
                    grace.span(),
                    "hooks.grace: must be a number of seconds from 0 to 3600",
                ));
            }
            layer.grace = Some(Duration::from_secs_f64(secs));
        }
        layer.user_dropins = hooks.user_dropins;
        for (event, list) in [
            (HookEvent::Pre, hooks.pre),
            (HookEvent::Started, hooks.started),
            (HookEvent::Stopping, hooks.stopping),
            (HookEvent::Post, hooks.post),
        ] {
            for h in list.unwrap_or_default() {
                layer.hooks.push(hook(&cx, event, h)?);
            }
        }
    }
    if let Some(l) = raw.limits {
        layer.limits = limits(&cx, l)?;
    }
    Ok(layer)
}

/// The highest `processes` and `open_files` a profile may ask for (the
/// kernel's own ceilings are lower still: `kernel.threads-max`, `fs.nr_open`).
const MAX_COUNT: i64 = 1 << 22;

fn limits(cx: &Ctx<'_>, raw: super::raw::RawLimits) -> Result<Limits, ProfileError> {
    let count = |v: Option<Spanned<i64>>, key: &str, min: i64| match v {
        None => Ok(None),
        Some(n) if (min..=MAX_COUNT).contains(n.get_ref()) => Ok(Some(*n.get_ref() as u64)),
        Some(n) => Err(cx.err(
            n.span(),
            format!("limits.{key}: must be a number from {min} to {MAX_COUNT}"),
        )),
    };
    let size = |v: Option<Spanned<super::raw::RawSize>>, key: &str, min: u64| {
        match v {
        None => Ok(None),
        Some(s) => match parse_size(s.get_ref()) {
            Some(b) if b >= min => Ok(Some(b)),
            _ => Err(cx.err(
                s.span(),
                format!(
                    "limits.{key}: `{}` is not a size of at least {} (a number with K, M, G or T, like \"512M\" or \"2G\", or bytes)",
                    match s.get_ref() {
                        super::raw::RawSize::Bytes(n) => n.to_string(),
                        super::raw::RawSize::Text(t) => t.clone(),
                    },
                    show_size(min)
                ),
            )),
        },
    }
    };
    let cpu = match raw.cpu {
        None => None,
        Some(c) => match parse_percent(c.get_ref()) {
            Some(p) => Some(p),
            None => {
                return Err(cx.err(
                    c.span(),
                    format!(
                        "limits.cpu: `{}` is not a share of the CPUs from 1% to 100000% (\"50%\": half of one CPU, \"200%\": two)",
                        c.get_ref()
                    ),
                ));
            }
        },
    };
    Ok(Limits {
        processes: count(raw.processes, "processes", 1)?,
        open_files: count(raw.open_files, "open_files", 16)?,
        core_dumps: raw.core_dumps,
        tmpfs: size(raw.tmpfs, "tmpfs", 16 << 20)?,
        memory: size(raw.memory, "memory", 16 << 20)?,
        cpu,
    })
}

/// `"512M"`, `"2G"`, `"1.5G"`, `"2GiB"` (K, M, G, T: powers of 1024; any
/// case; a `B` or `iB` after), or a number of bytes.
pub fn parse_size(v: &super::raw::RawSize) -> Option<u64> {
    let text = match v {
        super::raw::RawSize::Bytes(n) => return u64::try_from(*n).ok(),
        super::raw::RawSize::Text(t) => t.trim(),
    };
    let lower = text.to_ascii_lowercase();
    let unit_at = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(unit_at);
    let shift = match unit.trim_start() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let bytes = value * (1u64 << shift) as f64;
    (bytes.is_finite() && bytes >= 1.0 && bytes < (1u64 << 62) as f64).then_some(bytes as u64)
}

/// A size for people: `2 GiB`, `512 MiB`, `1.5 GiB`, `4096 bytes`.
pub fn show_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        let one = 1u64 << shift;
        if bytes >= one {
            let v = bytes as f64 / one as f64;
            return if bytes % one == 0 {
                format!("{} {unit}", bytes / one)
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{bytes} bytes")
}

/// A size as a profile writes it, exactly (`"2G"`, `"1536K"`, or bytes).
pub fn written_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if bytes % (1u64 << shift) == 0 && bytes > 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// `"200%"`: percent of one CPU, 1 to 100000.
fn parse_percent(v: &str) -> Option<u32> {
    let n: u32 = v.trim().strip_suffix('%')?.trim().parse().ok()?;
    (1..=100_000).contains(&n).then_some(n)
}

fn hook(cx: &Ctx<'_>, event: HookEvent, h: Spanned<RawHook>) -> Result<Hook, ProfileError> {
    let span = h.span();
    let at = cx.at(span.clone());
    let raw = h.into_inner();
    let key = event.key();
    let bad = |message: String| cx.err(span.clone(), format!("hooks.{key}: {message}"));
    if raw.can_fail.is_some() && raw.no_fail.is_some() {
        return Err(bad("set `can_fail` or its alias `no_fail`, not both".into()));
    }
    let attach = raw.attach.unwrap_or(false);
    if attach && event != HookEvent::Pre {
        return Err(bad(format!(
            "`attach` is for pre-hooks only (a {key}-hook {})",
            match event {
                HookEvent::Post => "runs after the sandbox has exited",
                HookEvent::Started => "already runs alongside the program",
                _ => "runs while the sandbox stops",
            }
        )));
    }
    if let Some(name) = &raw.name {
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(bad("`name` must be printable text".into()));
        }
    }
    let arguments = raw.arguments.unwrap_or_default();
    if arguments.iter().any(|a| a.contains('\0')) {
        return Err(bad("an argument contains a NUL character".into()));
    }
    let inside = raw.inside.unwrap_or(false);
    if inside && event != HookEvent::Started {
        return Err(bad(
            "`inside` is for started hooks only (the sandbox runs only then)".into(),
        ));
    }
    if inside && (raw.system.is_some() || raw.env.is_some()) {
        return Err(bad(
            "`system` and `env` do not apply inside the sandbox (the hook runs as the sandbox's user, with its environment)".into(),
        ));
    }
    if raw.on.is_some() && event != HookEvent::Post {
        return Err(bad("`on` is for post-hooks only".into()));
    }
    let on = raw
        .on
        .unwrap_or_default()
        .iter()
        .map(condition)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    let timeout = timeout(raw.timeout).map_err(|e| bad(e.to_string()))?;
    if raw.config.is_some() && raw.uses.is_none() {
        return Err(bad("`config` goes with `use` (a reusable hook)".into()));
    }
    // What the hook runs: `path` (wins over `content`, Antimony's rule),
    // `content`, `use` or `profile`.
    let kinds = [
        raw.path.is_some() || raw.content.is_some(),
        raw.uses.is_some(),
        raw.profile.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() > 1 {
        return Err(bad(
            "say what the hook runs once: `path`/`content`, `use`, or `profile`".into(),
        ));
    }
    let command = if let Some(path) = raw.path {
        let sp = Spanned::new(span.clone(), path);
        HookCommand::Program {
            path: program_ref(cx, &sp, &format!("hooks.{key}.path"))?,
            arguments,
        }
    } else if let Some(content) = raw.content {
        if content.contains('\0') {
            return Err(bad("`content` contains a NUL character".into()));
        }
        HookCommand::Script { content, arguments }
    } else if let Some(name) = raw.uses {
        if !valid_name(&name) {
            return Err(bad(format!("use: `{name}` is not a hook name")));
        }
        if !arguments.is_empty() {
            return Err(bad(
                "`arguments` belong to the reusable hook's definition; pass values with `config`"
                    .into(),
            ));
        }
        HookCommand::Use {
            name,
            config: raw.config.unwrap_or_default(),
        }
    } else if let Some(name) = raw.profile {
        if !valid_name(&name) {
            return Err(bad(format!("profile: `{name}` is not a profile name")));
        }
        if inside || raw.stdin.is_some() || raw.system.is_some() {
            return Err(bad(
                "a companion (`profile`) is a sandbox of its own: `inside`, `stdin` and `system` do not apply".into(),
            ));
        }
        HookCommand::Profile { name, arguments }
    } else {
        return Err(bad(
            "a hook needs `path` (a program), `content` (a bash script), `use` (a reusable hook) or `profile` (a companion sandbox)".into(),
        ));
    };
    Ok(Hook {
        event,
        name: raw.name,
        command,
        attach,
        identity: raw.system.unwrap_or_default(),
        env: raw.env.unwrap_or(false),
        can_fail: raw.can_fail.or(raw.no_fail).unwrap_or(false),
        explicit: Explicit {
            identity: raw.system.is_some(),
            env: raw.env.is_some(),
            can_fail: raw.can_fail.is_some() || raw.no_fail.is_some(),
            timeout: timeout.is_some(),
            stdin: raw.stdin.is_some(),
            on: !on.is_empty(),
        },
        on,
        timeout,
        stdin: raw.stdin.unwrap_or(false),
        inside,
        defined_at: at.to_string(),
    })
}

fn program_ref(
    cx: &Ctx<'_>,
    value: &Spanned<String>,
    what: &str,
) -> Result<ProgramRef, ProfileError> {
    let s = value.get_ref();
    if s.is_empty() || s.contains('\0') {
        return Err(cx.err(value.span(), format!("{what}: must name a program")));
    }
    if s.contains('/') || s.starts_with('~') {
        Ok(ProgramRef::Path(host_path(cx, s, value.span(), what)?))
    } else {
        Ok(ProgramRef::Name(s.clone()))
    }
}

fn env_value(cx: &Ctx<'_>, value: &Spanned<String>) -> Result<EnvValue, ProfileError> {
    let v = value.get_ref();
    if v.contains('\0') {
        return Err(cx.err(
            value.span(),
            "environment: a value contains a NUL character",
        ));
    }
    Ok(parse_env_value(v))
}

/// A value of `[environment]` (and `--env`): exactly `$NAME`, where NAME is
/// a shell variable name, copies the host's; anything else is literal.
pub fn parse_env_value(v: &str) -> EnvValue {
    if let Some(name) = v.strip_prefix('$') {
        let mut chars = name.chars();
        let is_name = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if is_name {
            return EnvValue::FromHost(name.to_string());
        }
    }
    EnvValue::Literal(v.to_string())
}

fn bind_entry(
    cx: &Ctx<'_>,
    mode: BindMode,
    entry: &Spanned<String>,
) -> Result<FileEntry, ProfileError> {
    let what = format!("files.{}", mode.key());
    let (optional, rest) = match entry.get_ref().strip_prefix('?') {
        Some(rest) => (true, rest),
        None => (false, entry.get_ref().as_str()),
    };
    let (host, sandbox) = match rest.split_once('=') {
        Some((h, s)) => (h, s),
        None => (rest, rest),
    };
    let source = files_path(cx, host, entry.span(), &what)?;
    let dest = files_path(cx, sandbox, entry.span(), &what)?;
    check_dest(cx, &dest, entry.span(), &what)?;
    Ok(FileEntry::Bind {
        mode,
        source,
        dest,
        optional,
    })
}

fn check_dest(
    cx: &Ctx<'_>,
    dest: &HostPath,
    span: Range<usize>,
    what: &str,
) -> Result<(), ProfileError> {
    if *dest == HostPath::Absolute(PathBuf::from("/")) {
        return Err(cx.err(
            span,
            format!("{what}: cannot mount over the sandbox's root `/`"),
        ));
    }
    Ok(())
}

/// A post-hook's `on` condition that is none.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    #[error(
        "on: `{0}` is not an outcome (ok, non-zero, signal, launch-failed, or an exit status 0-255)"
    )]
    NotOutcome(String),
    #[error("on: {0} is not an exit status (0-255)")]
    NotStatus(i64),
}

/// A post-hook's `on` condition (profiles and reusable hooks alike).
pub fn condition(c: &RawCondition) -> Result<Condition, ConditionError> {
    Ok(match c {
        RawCondition::Name(n) => match n.as_str() {
            "ok" => Condition::Ok,
            "non-zero" => Condition::NonZero,
            "signal" => Condition::Signal,
            "launch-failed" => Condition::LaunchFailed,
            other => return Err(ConditionError::NotOutcome(other.to_string())),
        },
        RawCondition::Code(n) => {
            Condition::Code(u8::try_from(*n).map_err(|_| ConditionError::NotStatus(*n))?)
        }
    })
}

/// A hook's `timeout` out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`timeout` must be a number of seconds above 0, at most 86400")]
pub struct TimeoutError;

/// A hook's `timeout` (profiles and reusable hooks alike).
pub fn timeout(t: Option<f64>) -> Result<Option<Duration>, TimeoutError> {
    match t {
        None => Ok(None),
        Some(t) if t.is_finite() && t > 0.0 && t <= 86400.0 => Ok(Some(Duration::from_secs_f64(t))),
        Some(_) => Err(TimeoutError),
    }
}

/// A path a profile (or an option) writes that is not one antimony takes.
/// `path` is the path as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("empty path")]
    Empty,
    #[error("path contains a NUL character")]
    Nul,
    #[error("`{path}`: only `~` and `~/…` (your own home) are understood")]
    OtherHome { path: String },
    #[error("`{path}` is relative: write an absolute path or one starting with `~/`")]
    Relative { path: String },
    /// A `[files]` path, which may also start with a variable.
    #[error("`{path}` is relative: write an absolute path, or one starting with `~/` or `$NAME/`")]
    RelativeFiles { path: String },
    #[error("`{path}` contains `..`")]
    ParentDir { path: String },
    #[error("`{path}` is not a Unix path")]
    NotUnix { path: String },
    #[error("`{path}`: `{part}` is not a variable (a `$NAME` stands for a whole part of the path)")]
    NotVariable { path: String, part: String },
    #[error("`{path}`: `$` may only start a part of the path that is a whole variable")]
    DollarInside { path: String },
}

/// A path as profiles write it: absolute or `~`-relative, normalised, with
/// no `..` and no NUL.
pub fn parse_host_path(s: &str) -> Result<HostPath, PathError> {
    let path = || s.to_string();
    if s.is_empty() {
        return Err(PathError::Empty);
    }
    if s.contains('\0') {
        return Err(PathError::Nul);
    }
    let (home, rest) = if s == "~" {
        (true, "")
    } else if let Some(rest) = s.strip_prefix("~/") {
        (true, rest)
    } else if s.starts_with('/') {
        (false, s)
    } else if s.starts_with('~') {
        return Err(PathError::OtherHome { path: path() });
    } else {
        return Err(PathError::Relative { path: path() });
    };
    let mut normal = PathBuf::new();
    for c in Path::new(rest).components() {
        match c {
            Component::RootDir => normal.push("/"),
            Component::CurDir => {}
            Component::Normal(n) => normal.push(n),
            Component::ParentDir => return Err(PathError::ParentDir { path: path() }),
            Component::Prefix(_) => return Err(PathError::NotUnix { path: path() }),
        }
    }
    Ok(if home {
        HostPath::Home(normal)
    } else {
        HostPath::Absolute(normal)
    })
}

/// A `[files]` path: like any host path, or with `$NAME` components
/// (`$XDG_RUNTIME_DIR/pipewire-0`, `$XDG_RUNTIME_DIR/$WAYLAND_DISPLAY`),
/// expanded with the host's values when the run is planned.
pub fn parse_files_path(s: &str) -> Result<HostPath, PathError> {
    let path = || s.to_string();
    if !s.contains('$') {
        return parse_host_path(s);
    }
    let mut parts = s.split('/').peekable();
    let first = parts.peek().copied().unwrap_or("");
    if !(first.is_empty() || first == "~" || first.starts_with('$')) {
        return Err(PathError::RelativeFiles { path: path() });
    }
    let mut normal: Vec<&str> = Vec::new();
    for (i, part) in s.split('/').enumerate() {
        match part {
            "" if i == 0 => normal.push(""),
            "" | "." => {}
            "~" if i == 0 => normal.push("~"),
            ".." => return Err(PathError::ParentDir { path: path() }),
            p if p.starts_with('$') => {
                let name = &p[1..];
                let mut chars = name.chars();
                let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !ok {
                    return Err(PathError::NotVariable {
                        path: path(),
                        part: p.to_string(),
                    });
                }
                normal.push(p);
            }
            p if p.contains('$') => {
                return Err(PathError::DollarInside { path: path() });
            }
            p => normal.push(p),
        }
    }
    if s.contains('\0') {
        return Err(PathError::Nul);
    }
    Ok(HostPath::Vars(match normal.as_slice() {
        [""] => "/".into(),
        _ => normal.join("/"),
    }))
}

fn files_path(
    cx: &Ctx<'_>,
    s: &str,
    span: Range<usize>,
    what: &str,
) -> Result<HostPath, ProfileError> {
    parse_files_path(s).map_err(|m| cx.err(span, format!("{what}: {m}")))
}

fn host_path(
    cx: &Ctx<'_>,
    s: &str,
    span: Range<usize>,
    what: &str,
) -> Result<HostPath, ProfileError> {
    parse_host_path(s).map_err(|m| cx.err(span, format!("{what}: {m}")))
}

/// A D-Bus well-known name, or a prefix pattern ending in `.*`.
fn bus_name(s: &str) -> bool {
    let name = s.strip_suffix(".*").unwrap_or(s);
    !name.is_empty()
        && name.len() <= 255
        && name.contains('.')
        && !name.starts_with(['.', '-'])
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

/// An xdg-dbus-proxy rule: `[METHOD][@PATH]`, `*` allowed.
fn bus_rule(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._*@/-".contains(c))
}

fn valid_home_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('/') && name.split('/').all(valid_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Origin;
    use std::borrow::Cow;

    fn src(text: &str) -> Source {
        Source {
            name: "t".into(),
            origin: Origin::File("t.toml".into()),
            text: Cow::Owned(text.to_string()),
        }
    }

    fn err(text: &str) -> String {
        load_layer(&src(text)).unwrap_err().to_string()
    }

    #[test]
    fn sizes_and_shares_of_the_cpu() {
        use super::super::raw::RawSize::{Bytes, Text};
        let size = |t: &str| parse_size(&Text(t.into()));
        assert_eq!(size("2G"), Some(2 << 30));
        assert_eq!(size("512m"), Some(512 << 20));
        assert_eq!(size("1.5GiB"), Some(3 << 29));
        assert_eq!(size("64 MB"), Some(64 << 20));
        assert_eq!(size("4096"), Some(4096));
        assert_eq!(parse_size(&Bytes(1 << 30)), Some(1 << 30));
        for bad in ["", "G", "2X", "-1G", ".5G", "2.G", "1e3", "0"] {
            assert_eq!(size(bad), None, "{bad}");
        }
        assert_eq!(parse_size(&Bytes(-1)), None);
        assert_eq!(written_size(3 << 29), "1536M");
        assert_eq!(written_size(2 << 30), "2G");
        assert_eq!(written_size(1000), "1000");
        assert_eq!(show_size(3 << 29), "1.5 GiB");
        assert_eq!(parse_percent("200%"), Some(200));
        assert_eq!(parse_percent("0%"), None);
        assert_eq!(parse_percent("200"), None);
    }

    #[test]
    fn unknown_keys_and_types_are_positioned() {
        assert!(err("patth = 1\n").starts_with("t.toml:1:1: unknown field `patth`"));
        let e = err("[sandbox]\nnetwork = \"yes\"\n");
        assert!(e.starts_with("t.toml:2:11:"), "{e}");
        let e = err("[files]\nro = [\n  \"relative/x\",\n]\n");
        assert!(
            e.starts_with("t.toml:3:3: files.ro: `relative/x` is relative"),
            "{e}"
        );
        assert!(err("a = [\n").starts_with("t.toml:"), "syntax");
    }

    #[test]
    fn hooks_are_checked_at_load() {
        let e = err("[[hooks.pre]]\nattach = true\n");
        assert!(
            e.starts_with("t.toml:1:1: hooks.pre: a hook needs `path`"),
            "{e}"
        );
        let e = err("[[hooks.post]]\npath = \"/bin/true\"\nattach = true\n");
        assert!(e.contains("`attach` is for pre-hooks only"), "{e}");
        let e = err("[[hooks.pre]]\npath = \"/bin/true\"\ncan_fail = true\nno_fail = true\n");
        assert!(e.contains("not both"), "{e}");
        let l = load_layer(&src(
            "[[hooks.pre]]\npath = \"/bin/p\"\ncontent = \"echo\"\nno_fail = true\n",
        ))
        .unwrap();
        assert!(l.hooks[0].can_fail);
        assert!(matches!(l.hooks[0].command, HookCommand::Program { .. }));
    }

    #[test]
    fn binds_parse() {
        let l = load_layer(&src(
            "[files]\nro = [\"/usr/share\", \"?~/a=/b\"]\ntmpfs = [\"/run\"]\n",
        ))
        .unwrap();
        assert_eq!(l.files[0].written(), "/usr/share");
        assert_eq!(l.files[1].written(), "?~/a=/b");
        assert!(matches!(l.files[2], FileEntry::Tmpfs { .. }));
        assert!(err("[files]\nrw = [\"/x=/\"]\n").contains("root"));
        assert!(err("[files]\nrw = [\"/x/../y\"]\n").contains("`..`"));
    }

    #[test]
    fn files_paths_with_variables() {
        assert_eq!(
            parse_files_path("$XDG_RUNTIME_DIR/$WAYLAND_DISPLAY").unwrap(),
            HostPath::Vars("$XDG_RUNTIME_DIR/$WAYLAND_DISPLAY".into())
        );
        assert_eq!(
            parse_files_path("~/./a//$X").unwrap(),
            HostPath::Vars("~/a/$X".into())
        );
        assert!(parse_files_path("a/$X").is_err());
        assert!(parse_files_path("$X/../y").is_err());
        assert!(parse_files_path("/a$X").is_err());
        assert!(parse_files_path("$1X").is_err());
        assert_eq!(
            parse_files_path("/usr/share").unwrap(),
            HostPath::Absolute("/usr/share".into())
        );
    }

    #[test]
    fn abstract_socket_names() {
        for ok in ["@/tmp/.X11-unix/X0", "@/tmp/.X11-unix/X*", "@x", "@*"] {
            assert!(abstract_socket_name(ok), "{ok}");
        }
        let long = format!("@{}", "a".repeat(108));
        for bad in ["/tmp/.X11-unix/X0", "@", "@a*b", "@a\0", long.as_str()] {
            assert!(!abstract_socket_name(bad), "{bad}");
        }
        let e = err("[sandbox]\nabstract_sockets = [\"x\"]\n");
        assert!(
            e.starts_with("t.toml:2:21: sandbox.abstract_sockets: `x`"),
            "{e}"
        );
    }

    #[test]
    fn env_values() {
        let l = load_layer(&src("[environment]\nA = \"$LANG\"\nB = \"$LANG/x\"\n")).unwrap();
        assert_eq!(l.environment["A"], EnvValue::FromHost("LANG".into()));
        assert_eq!(l.environment["B"], EnvValue::Literal("$LANG/x".into()));
    }
}
