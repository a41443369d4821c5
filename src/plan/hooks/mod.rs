//! Hooks as the plan has them: where every hook of a run comes from, and
//! what exactly it will run. This is definition time; running them is
//! `crate::hooks`, which takes the `PlannedHook`s and nothing else.
//!
//! - `library`: reusable hooks (`hooks/NAME.toml`), found like profiles,
//!   their placeholders filled for one use;
//! - `dropins`: the `hooks.d/EVENT/` folders of the system and the user;
//! - here: the profile's hooks, the reusable ones and the drop-ins of each
//!   event in the order they run, each with its program found, its
//!   arguments and its state key.
//!
//! Everything on the host (folders, definition files, programs on PATH) is
//! looked at through the plan's `HostView`.

pub mod dropins;
pub mod library;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{PlanError, sandbox_path};
use crate::host::{Host, HostView};
use crate::profile::validate::parse_host_path;
use crate::profile::{Hook, HookCommand, HookEvent, HostPath, Profile, ProgramRef, Searcher};

/// How long a stopping hook without a `timeout` may run.
pub const STOPPING_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Every hook of the run, event by event in the order they run: the
/// system's and the user's drop-ins around the profile's own.
pub(super) fn plan(
    profile: &Profile,
    host: &Host,
    fs: &dyn HostView,
    vars: &library::Vars,
    warnings: &mut Vec<String>,
) -> Result<Vec<PlannedHook>, PlanError> {
    let library = Searcher::hooks(host);
    let user_dropins = host.config_home.join("antimony/hooks.d");
    // Usually neither folder exists: one look each, not one per event.
    let system_dropins = fs.is_dir(Path::new(dropins::SYSTEM_DIR));
    let user_dropins_exist = profile.user_dropins && fs.is_dir(&user_dropins);
    let mut out = Vec::new();
    for event in HookEvent::ALL {
        let mut system = Vec::new();
        let mut user = Vec::new();
        if system_dropins {
            let (found, w) = dropins::find(
                fs,
                Path::new(dropins::SYSTEM_DIR),
                dropins::Scope::System,
                event,
                host.uid,
            );
            warnings.extend(w);
            system.extend(found.iter().map(|d| plan_dropin(d, event)));
        }
        if user_dropins_exist {
            let (found, w) =
                dropins::find(fs, &user_dropins, dropins::Scope::User, event, host.uid);
            warnings.extend(w);
            user.extend(found.iter().map(|d| plan_dropin(d, event)));
        }
        let mut own = Vec::new();
        for (i, hook) in profile.hooks(event).enumerate() {
            own.push(plan_hook(hook, i + 1, host, fs, &library, vars)?);
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
    fs: &dyn HostView,
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
        let def = library::load(fs, library, name, &hook.defined_at)?;
        let inst = def.instantiate(hook.event, overrides, vars, &hook.defined_at)?;
        // An unnamed `use` hook is named after its definition (in messages,
        // records, its JSON input and a script's `$0`), not "script".
        if hook.name.is_none() {
            hook.name = Some(name.clone());
        }
        hook.command = match (inst.path, inst.content) {
            (Some(path), _) => HookCommand::Program {
                path: ProgramRef::Path(parse_host_path(&path).map_err(|e| {
                    crate::profile::ProfileError::Definition {
                        file: def.file.clone(),
                        message: e.to_string(),
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
            let not_found = |name: &str| PlanError::HookProgramNotFound {
                hook: hook.label(),
                name: name.to_string(),
            };
            let exec = match (path, hook.inside) {
                (ProgramRef::Path(p), _) => p.resolve(&host.home),
                (ProgramRef::Name(name), true) => fs
                    .find_program(name, sandbox_path(host.uid))
                    .ok_or_else(|| not_found(name))?,
                (ProgramRef::Name(name), false) => {
                    let host_path = host
                        .var("PATH")
                        .map(|p| p.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
                    fs.find_program(name, &host_path)
                        .ok_or_else(|| not_found(name))?
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
            let exe = fs
                .current_exe()
                .unwrap_or_else(|_| PathBuf::from("antimony"));
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
