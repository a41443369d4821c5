//! Drop-in hook folders (p2's hook directories): every executable file in
//! `hooks.d/EVENT/` under the system's (`/etc/antimony/`) and the user's
//! (`$XDG_CONFIG_HOME/antimony/`) configuration folders runs for every
//! profile at that event, in lexical order of file names. System pre-hooks
//! (and started hooks) run first, system post-hooks (and stopping hooks)
//! last, so the system's wrap the user's, which wrap the profile's. A
//! profile may opt out of the user's drop-ins (`[hooks] user_dropins =
//! false`), never out of the system's.
//!
//! A drop-in is run only if neither it nor its folder can be written by
//! anyone but root (system) or root and the user (user's): antimony never
//! executes a file a sandbox or another user could have put there.

use std::path::{Path, PathBuf};

use crate::host::HostView;
use crate::host::view::Stat;
use crate::profile::HookEvent;

pub const SYSTEM_DIR: &str = "/etc/antimony/hooks.d";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    System,
    User,
}

impl Scope {
    pub fn key(self) -> &'static str {
        match self {
            Scope::System => "system",
            Scope::User => "user",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropIn {
    pub scope: Scope,
    pub event: HookEvent,
    pub path: PathBuf,
    /// The file name.
    pub name: String,
}

fn trusted(meta: &Stat, owner: u32) -> bool {
    (meta.uid == 0 || meta.uid == owner) && meta.mode & 0o022 == 0
}

/// The drop-ins of one folder for one event, in lexical order, and warnings
/// about files skipped.
pub fn find(
    fs: &dyn HostView,
    base: &Path,
    scope: Scope,
    event: HookEvent,
    uid: u32,
) -> (Vec<DropIn>, Vec<String>) {
    let owner = match scope {
        Scope::System => 0,
        Scope::User => uid,
    };
    let dir = base.join(event.key());
    let mut found = Vec::new();
    let mut warnings = Vec::new();
    let Ok(entries) = fs.read_dir(&dir) else {
        return (found, warnings);
    };
    let dir_ok = [base, dir.as_path()]
        .iter()
        .all(|d| fs.stat(d).is_ok_and(|m| trusted(&m, owner)));
    if !dir_ok {
        warnings.push(format!(
            "{}: skipped: the folder may be written by others than {}",
            dir.display(),
            if owner == 0 { "root" } else { "root and you" }
        ));
        return (found, warnings);
    }
    let mut names: Vec<(String, PathBuf)> = entries
        .into_iter()
        .filter_map(|e| {
            let name = e.into_string().ok()?;
            // Editor backups and hidden files are not hooks.
            (!name.starts_with('.') && !name.ends_with('~')).then(|| {
                let path = dir.join(&name);
                (name, path)
            })
        })
        .collect();
    names.sort();
    for (name, path) in names {
        let Ok(meta) = fs.stat(&path) else {
            continue;
        };
        if !meta.is_executable_file() {
            continue;
        }
        if !trusted(&meta, owner) {
            warnings.push(format!(
                "{}: skipped: it may be written by others than {}",
                path.display(),
                if owner == 0 { "root" } else { "root and you" }
            ));
            continue;
        }
        found.push(DropIn {
            scope,
            event,
            path,
            name,
        });
    }
    (found, warnings)
}
