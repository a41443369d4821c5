//! The denial report (`run --explain`): the paths a program tried that
//! exist on the host but that its sandbox hides, with what to add to the
//! profile. "Unspecified Application Error" becomes "soffice.bin tried
//! /etc/libreoffice, which this profile does not grant".

use std::path::{Path, PathBuf};

use super::{Recording, collapse, container, outermost, uninteresting, written};
use crate::plan::Plan;

/// One path the sandbox hid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hidden {
    /// What to grant: the folder the path lies in (`collapse`).
    pub grant: PathBuf,
    /// The first path the program tried there.
    pub tried: PathBuf,
    pub device: bool,
    /// `package_config = true` would grant it.
    pub package_config: bool,
}

/// The most a report lists.
const MOST: usize = 12;

/// The hidden paths of a recorded run, system folders first.
pub fn hidden(
    plan: &Plan,
    rec: &Recording,
    home: &Path,
    runtime_dir: Option<&Path>,
    package_paths: &[PathBuf],
) -> Vec<Hidden> {
    let mut found: Vec<(PathBuf, PathBuf)> = Vec::new();
    for p in rec.paths.keys() {
        if (!p.starts_with(home) && uninteresting(p, runtime_dir))
            || container(p, home)
            || std::fs::symlink_metadata(p).is_err()
            || super::shown(plan, p)
            || runtime_dir.is_some_and(|r| p.starts_with(r))
        {
            continue;
        }
        // The sandbox's own home (of a profile that has one) is not the host's.
        if p.starts_with(home) && plan.host_home.is_some() {
            continue;
        }
        found.push((collapse(p, home), p.clone()));
    }
    let grants = outermost(found.iter().map(|(g, _)| g.clone()).collect());
    let mut out: Vec<Hidden> = grants
        .into_iter()
        .map(|g| {
            let tried = found
                .iter()
                .find(|(c, _)| c.starts_with(&g))
                .map(|(_, p)| p.clone())
                .unwrap_or_else(|| g.clone());
            Hidden {
                device: g.starts_with("/dev"),
                package_config: package_paths.iter().any(|p| g.starts_with(p)),
                grant: g,
                tried,
            }
        })
        .collect();
    // System folders first, the home's after.
    out.sort_by_key(|h| (h.grant.starts_with(home), h.grant.clone()));
    out.truncate(MOST);
    out
}

/// The report, one line per hidden path.
pub fn report(program: &str, list: &[Hidden], home: &Path) -> String {
    let mut out = String::new();
    for h in list {
        let grant = written(&h.grant, home);
        let key = if h.device { "dev" } else { "ro" };
        let tried = if h.tried == h.grant {
            String::new()
        } else {
            format!(" ({})", written(&h.tried, home))
        };
        let alt = if h.package_config {
            " (or `package_config = true`)"
        } else {
            ""
        };
        out.push_str(&format!(
            "{program} tried {grant}{tried}, which this profile does not grant; add `{key} = [\"{grant}\"]` to [files]{alt}\n"
        ));
    }
    out
}

/// Where the last report of a profile is kept (`antimony log PROFILE`).
pub fn report_file(state_home: &Path, profile: &str) -> PathBuf {
    state_home
        .join("antimony/explain")
        .join(format!("{}.txt", profile.replace('/', "_")))
}
