//! Desktop and shell integration: `antimony integrate PROFILE` puts a
//! profile in the desktop's menu and on PATH so that it is started through
//! antimony, whichever way it is started; `--remove` takes exactly that
//! back. `shell` writes the completion scripts.
//!
//! What `integrate` writes, each file marked as antimony's (`MARKER`):
//! - `$XDG_DATA_HOME/applications/ID.desktop` for each system entry of the
//!   program (same desktop id, so it shadows the system's: the menu shows
//!   one entry), every `Exec=` through antimony; or a minimal entry when the
//!   system has none;
//! - `$XDG_DATA_HOME/dbus-1/services/NAME.service` for each system D-Bus
//!   service that starts the program, so that D-Bus activation goes through
//!   antimony too;
//! - the symlink `~/.local/bin/PROFILE` → antimony (antimony started under
//!   another name runs the profile of that name);
//! - a record of the files it wrote, and of the folders it made, under
//!   `$XDG_STATE_HOME/antimony/integrations/`, which no sandbox can write.
//!
//! A file in the way that antimony did not write is never replaced: the
//! whole command fails before anything is written. `--remove` deletes a
//! file only if it still carries the profile's mark (or is a symlink to
//! antimony), and a folder only if integrate made it and it is empty again.

pub mod desktop;
pub mod exec;
pub mod keyfile;
pub mod shell;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::host::{Host, HostView, RealHost};
use crate::plan::{self, RunOptions};
use crate::profile::{self, ProgramRef, Searcher};
use desktop::{Context, ENTRY_GROUP, SERVICE_GROUP};

/// The data folders searched for the system's entries when
/// `$XDG_DATA_DIRS` is unset, as the XDG Base Directory Specification says.
const DEFAULT_DATA_DIRS: &str = "/usr/local/share:/usr/share";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Desktop,
    Service,
    Link,
}

/// Why `integrate` refused or failed, before it wrote anything.
#[derive(Debug, thiserror::Error)]
pub enum IntegrateError {
    #[error(
        "integrate: `{0}` is not a profile name (integrate names the symlink after the profile, so it takes a name, not a file)"
    )]
    NotAName(String),
    #[error(
        "integrate: `{0}`: a profile whose name starts with `antimony` cannot be started through a symlink of that name"
    )]
    ReservedName(String),
    #[error(
        "integrate: {file} was written by `antimony integrate {other}`; remove that first (`antimony integrate --remove {other}`)"
    )]
    OtherProfiles { file: String, other: String },
    #[error(
        "integrate: {file} exists and was not written by antimony; not replacing it (move it away and run integrate again)"
    )]
    NotOurs { file: String },
    #[error(
        "integrate: `{name}` is {path}, a command of the system's that scripts run (`#!/usr/bin/env {name}`): through the link they would all get the sandbox. Use `antimony run {name}`, or integrate it anyway with --force"
    )]
    SystemCommand { name: String, path: PathBuf },
    #[error("integrate: {file}: cannot read its command line `{line}`")]
    UnreadableExec { file: PathBuf, line: String },
}

/// What `integrate` or `--remove` did, for the command to print.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// In the order they were done.
    pub done: Vec<Done>,
    /// What the user should know (PATH order, a shadowed system command).
    pub warnings: Vec<String>,
}

/// One thing done to a file (paths as `Host::display_path` shows them).
#[derive(Debug, PartialEq, Eq)]
pub enum Done {
    Linked {
        link: String,
        target: PathBuf,
    },
    Wrote {
        file: String,
        shadows: Option<PathBuf>,
    },
    Removed {
        file: String,
    },
    /// `--remove` found nothing of the profile's.
    NothingToRemove {
        profile: String,
    },
    /// `--refresh` found no integrated profile.
    NothingToRefresh,
}

impl std::fmt::Display for Done {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Done::Linked { link, target } => write!(f, "linked {link} → {}", target.display()),
            Done::Wrote {
                file,
                shadows: Some(s),
            } => write!(f, "wrote {file} (shadows {})", s.display()),
            Done::Wrote {
                file,
                shadows: None,
            } => write!(f, "wrote {file}"),
            Done::Removed { file } => write!(f, "removed {file}"),
            Done::NothingToRemove { profile } => write!(f, "nothing to remove for {profile}"),
            Done::NothingToRefresh => write!(f, "no profile is integrated: nothing to refresh"),
        }
    }
}

/// One file `integrate` writes.
#[derive(Debug, Clone)]
struct Item {
    kind: Kind,
    path: PathBuf,
    /// The file's text, or the symlink's target.
    contents: String,
    /// The system file it shadows.
    shadows: Option<PathBuf>,
}

/// The files `integrate` wrote for a profile, kept so that `--remove` can
/// take them back.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Record {
    profile: String,
    files: Vec<PathBuf>,
}

/// The folders `integrate` made (for any profile) because they did not
/// exist: removed when they are empty again.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Folders {
    dirs: Vec<PathBuf>,
}

/// Who a file in the way belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    Absent,
    /// Written by `antimony integrate` for this profile.
    Ours(String),
    Foreign,
}

fn records_dir(host: &Host) -> PathBuf {
    host.state_home.join("antimony/integrations")
}

fn record_path(host: &Host, name: &str) -> PathBuf {
    records_dir(host).join(format!("{name}.json"))
}

/// The record of made folders; its name is no profile's (a profile name
/// starts with a letter or digit).
fn folders_path(host: &Host) -> PathBuf {
    records_dir(host).join(".folders.json")
}

fn local_bin(host: &Host) -> PathBuf {
    host.home.join(".local/bin")
}

fn data_dirs(host: &Host) -> Vec<PathBuf> {
    let value = host
        .var("XDG_DATA_DIRS")
        .map(|v| v.to_string_lossy().into_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_DATA_DIRS.to_string());
    let mut dirs: Vec<PathBuf> = Vec::new();
    for d in value.split(':').map(PathBuf::from) {
        if d.is_absolute() && d != host.data_home && !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs
}

fn check_name(name: &str) -> Result<(), Error> {
    if profile::is_path_argument(name) || !profile::valid_name(name) {
        return Err(IntegrateError::NotAName(name.into()).into());
    }
    if name.starts_with("antimony") {
        return Err(IntegrateError::ReservedName(name.into()).into());
    }
    Ok(())
}

/// Whether a symlink is antimony's: it points at this antimony, or it is
/// one integrate recorded and points at an `antimony` (a binary since
/// moved or rebuilt elsewhere). A link to anything else is the user's.
fn is_antimony_link(path: &Path, exe: &Path, recorded: bool) -> bool {
    let Ok(target) = std::fs::read_link(path) else {
        return false;
    };
    target == exe
        || std::fs::canonicalize(path).is_ok_and(|p| p == exe)
        || (recorded && target.file_name().is_some_and(|n| n == "antimony"))
}

/// Who `path` belongs to; `recorded`: integrate's record lists it.
fn owner(kind: Kind, path: &Path, exe: &Path, recorded: bool) -> Result<Owner, Error> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Owner::Absent),
        Err(e) => return Err(Error::io(format!("integrate: {}", path.display()), e)),
    };
    match kind {
        Kind::Link => Ok(
            if meta.file_type().is_symlink() && is_antimony_link(path, exe, recorded) {
                Owner::Ours(
                    path.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                )
            } else {
                Owner::Foreign
            },
        ),
        Kind::Desktop | Kind::Service => {
            if !meta.is_file() {
                return Ok(Owner::Foreign);
            }
            // A file antimony cannot read is not one it wrote.
            let Ok(text) = std::fs::read_to_string(path) else {
                return Ok(Owner::Foreign);
            };
            let group = if kind == Kind::Desktop {
                ENTRY_GROUP
            } else {
                SERVICE_GROUP
            };
            Ok(desktop::marker(&text, group).map_or(Owner::Foreign, Owner::Ours))
        }
    }
}

fn kind_of(path: &Path, host: &Host) -> Kind {
    if path.parent() == Some(local_bin(host).as_path()) {
        Kind::Link
    } else if path.extension().is_some_and(|e| e == "service") {
        Kind::Service
    } else {
        Kind::Desktop
    }
}

/// The profile's programs as canonical host paths: every `path`
/// alternative that exists, or the profile's name on the PATH.
fn profile_programs(p: &profile::Profile, host: &Host, planned: &Path) -> Vec<PathBuf> {
    let fallback = [ProgramRef::Name(p.name.clone())];
    let refs: &[ProgramRef] = if p.path.is_empty() {
        &fallback
    } else {
        &p.path
    };
    let mut out = Vec::new();
    let mut add = |path: PathBuf| {
        if let Ok(c) = std::fs::canonicalize(path) {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    };
    add(planned.to_path_buf());
    for r in refs {
        match r {
            ProgramRef::Path(hp) => add(hp.resolve(&host.home)),
            // Where the sandbox looks it up.
            ProgramRef::Name(n) => {
                if let Some(found) = RealHost.find_program(n, plan::sandbox_path(host.uid)) {
                    add(found);
                }
            }
        }
    }
    out
}

fn search_path(host: &Host) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = host
        .var("PATH")
        .map(|p| std::env::split_paths(p).collect())
        .unwrap_or_default();
    dirs.retain(|d| d.is_absolute() && *d != local_bin(host));
    for d in plan::sandbox_path(host.uid).split(':') {
        let d = PathBuf::from(d);
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs
}

/// `antimony integrate PROFILE`; `force`: even a command of the system's.
pub fn integrate(
    name: &str,
    force: bool,
    host: &Host,
    searcher: &Searcher,
) -> Result<Report, Error> {
    check_name(name)?;
    let p = profile::resolve(searcher, name)?;
    // Planned like a run: a profile that cannot run (a fragment, which
    // `plan::build` refuses, or a missing program) is not put in the menu.
    let opts = RunOptions::default();
    let planned = plan::build(&p, &opts, host, &RealHost, plan::CHECK_INSTANCE)?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("integrate: cannot find antimony's own path", e))?;
    let from_build = is_build_folder(&exe);
    let cx = Context {
        profile: name.to_string(),
        antimony: exe.clone(),
        from_build,
        programs: profile_programs(&p, host, &planned.program),
        search_path: search_path(host),
    };

    // What to write.
    let dirs = data_dirs(host);
    let apps = host.data_home.join("applications");
    let services = host.data_home.join("dbus-1/services");
    let mut items = Vec::new();
    let all_entries = desktop::scan_entries(&dirs);
    let entries = desktop::entries_for(&all_entries, p.id.as_deref(), &cx);
    for f in &entries {
        items.push(Item {
            kind: Kind::Desktop,
            path: apps.join(&f.id),
            contents: desktop::shadow_entry(f, &cx)?,
            shadows: Some(f.path.clone()),
        });
    }
    if entries.is_empty() {
        let id =
            p.id.as_deref()
                .map(|i| i.strip_suffix(".desktop").unwrap_or(i).to_string());
        let file = format!(
            "{}.desktop",
            id.clone().unwrap_or_else(|| format!("antimony-{name}"))
        );
        // A program that reaches a display (however the profile gives it
        // one) gets no terminal.
        let graphical = ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|v| p.environment.contains_key(*v));
        items.push(Item {
            kind: Kind::Desktop,
            path: apps.join(file),
            contents: desktop::minimal_entry(
                &cx,
                id.as_deref(),
                p.description.as_deref(),
                !graphical,
            ),
            shadows: None,
        });
    }
    // Not an application the desktop knows, but a command the system has
    // (sh, python3): the link would come first for everything that finds
    // it on PATH, scripts (`#!/usr/bin/env python3`) and hooks included.
    let system_command = if entries.is_empty() {
        RealHost.find_program(name, plan::sandbox_path(host.uid))
    } else {
        None
    };
    if let (Some(path), false) = (&system_command, force) {
        return Err(IntegrateError::SystemCommand {
            name: name.into(),
            path: path.clone(),
        }
        .into());
    }
    let ids: Vec<String> = entries.iter().map(|f| f.id.clone()).collect();
    let all_services = desktop::scan_services(&dirs);
    for f in desktop::services_for(&all_services, &ids, &cx) {
        items.push(Item {
            kind: Kind::Service,
            path: services.join(&f.id),
            contents: desktop::shadow_service(f, &cx)?,
            shadows: Some(f.path.clone()),
        });
    }
    items.push(Item {
        kind: Kind::Link,
        path: local_bin(host).join(name),
        contents: exe.to_string_lossy().into_owned(),
        shadows: None,
    });

    let record_file = record_path(host, name);
    let old: Option<Record> = read_json(&record_file);
    let recorded = |p: &Path| old.as_ref().is_some_and(|r| r.files.iter().any(|f| f == p));
    // Nothing is written while anything in the way is not ours.
    for item in &items {
        match owner(item.kind, &item.path, &exe, recorded(&item.path))? {
            Owner::Absent => {}
            Owner::Ours(other) if other == name || item.kind == Kind::Link => {}
            Owner::Ours(other) => {
                return Err(IntegrateError::OtherProfiles {
                    file: host.display_path(&item.path),
                    other,
                }
                .into());
            }
            Owner::Foreign => {
                return Err(IntegrateError::NotOurs {
                    file: host.display_path(&item.path),
                }
                .into());
            }
        }
    }

    // The record first, so that `--remove` finds everything even if this
    // stops half-way.
    let record = Record {
        profile: name.to_string(),
        files: items.iter().map(|i| i.path.clone()).collect(),
    };
    let folders_file = folders_path(host);
    let mut folders: Folders = read_json(&folders_file).unwrap_or_default();
    let mut made = make_dirs(&records_dir(host))?;
    for d in items.iter().filter_map(|i| i.path.parent()) {
        made.extend(make_dirs(d)?);
    }
    for d in made {
        if !folders.dirs.contains(&d) {
            folders.dirs.push(d);
        }
    }
    write_json(&folders_file, &folders)?;
    write_json(&record_file, &record)?;

    let mut report = Report::default();
    for item in &items {
        match item.kind {
            Kind::Link => {
                if std::fs::read_link(&item.path).ok().as_deref() != Some(exe.as_path()) {
                    replace_symlink(&item.path, &exe)?;
                }
                report.done.push(Done::Linked {
                    link: host.display_path(&item.path),
                    target: exe.clone(),
                });
            }
            Kind::Desktop | Kind::Service => {
                write_file(&item.path, &item.contents)?;
                report.done.push(Done::Wrote {
                    file: host.display_path(&item.path),
                    shadows: item.shadows.clone(),
                });
            }
        }
    }
    // Files an earlier integrate wrote that are no longer wanted (the
    // system entry is gone): taken back.
    if let Some(old) = old {
        for f in old.files.iter().filter(|f| !record.files.contains(f)) {
            if owner(kind_of(f, host), f, &exe, true)? == Owner::Ours(name.to_string()) {
                remove_file(f)?;
                report.done.push(Done::Removed {
                    file: host.display_path(f),
                });
            }
        }
    }
    report.warnings.extend(path_warning(name, host));
    if from_build {
        report.warnings.push(format!(
            "antimony runs from its build folder ({}): the files name that path; once antimony is installed, run `antimony integrate --refresh`",
            exe.display()
        ));
    }
    if let Some(system) = system_command {
        report.warnings.push(format!(
            "{} now stands for {} wherever PATH finds `{name}`: scripts (`#!/usr/bin/env {name}`) and programs that run `{name}` get the sandbox too",
            host.display_path(&local_bin(host).join(name)),
            system.display()
        ));
    }
    Ok(report)
}

/// Whether antimony runs from a cargo build folder (target/debug,
/// target/release…): cargo keeps its lock file there.
pub fn is_build_folder(exe: &Path) -> bool {
    exe.parent()
        .is_some_and(|dir| dir.join(".cargo-lock").exists())
}

/// `antimony integrate --refresh`: every profile integrate has a record
/// of, integrated again by this antimony (so with its path). A profile
/// integrated once was allowed then: it is refreshed as with --force.
pub fn refresh(host: &Host, searcher: &Searcher) -> Result<Report, Error> {
    let mut names: Vec<String> = std::fs::read_dir(records_dir(host))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_str()?.strip_suffix(".json")?.to_string();
                    profile::valid_name(&name).then_some(name)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut report = Report::default();
    for name in names {
        let mut one = integrate(&name, true, host, searcher)?;
        report.done.append(&mut one.done);
        // The warning that it stands for a system command was said when
        // it was integrated.
        for w in one.warnings {
            if !report.warnings.contains(&w) && !w.contains("now stands for") {
                report.warnings.push(w);
            }
        }
    }
    if report.done.is_empty() {
        report.done.push(Done::NothingToRefresh);
    }
    Ok(report)
}

/// The warning when typing the profile's name in a shell would not go
/// through the symlink.
fn path_warning(name: &str, host: &Host) -> Option<String> {
    let bin = local_bin(host);
    let path: Vec<PathBuf> = host
        .var("PATH")
        .map(|p| std::env::split_paths(p).collect())
        .unwrap_or_default();
    let display = host.display_path(&bin);
    match path.iter().position(|d| *d == bin) {
        None => Some(format!(
            "{display} is not on PATH: typing `{name}` in a shell does not start it through antimony"
        )),
        Some(i) => path[..i]
            .iter()
            .find(|d| d.join(name).is_file())
            .map(|earlier| {
                format!(
                    "{} comes before {display} on PATH: typing `{name}` in a shell starts {} outside the sandbox",
                    earlier.display(),
                    earlier.join(name).display()
                )
            }),
    }
}

/// `antimony integrate --remove PROFILE`.
pub fn remove(name: &str, host: &Host) -> Result<Report, Error> {
    check_name(name)?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("integrate: cannot find antimony's own path", e))?;
    let record_file = record_path(host, name);
    let record: Option<Record> = read_json(&record_file);
    // The record's files, and anything else that carries the mark.
    let mut candidates: BTreeSet<PathBuf> = record
        .as_ref()
        .map(|r| r.files.iter().cloned().collect())
        .unwrap_or_default();
    for dir in [
        host.data_home.join("applications"),
        host.data_home.join("dbus-1/services"),
    ] {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            candidates.extend(rd.filter_map(|e| e.ok()).map(|e| e.path()));
        }
    }
    candidates.insert(local_bin(host).join(name));

    let mut report = Report::default();
    let recorded = |p: &Path| {
        record
            .as_ref()
            .is_some_and(|r| r.files.iter().any(|f| f == p))
    };
    for path in &candidates {
        if owner(kind_of(path, host), path, &exe, recorded(path))? == Owner::Ours(name.to_string())
        {
            remove_file(path)?;
            report.done.push(Done::Removed {
                file: host.display_path(path),
            });
        }
    }
    remove_file(&record_file)?;
    remove_folders(host)?;
    if report.done.is_empty() {
        report.done.push(Done::NothingToRemove {
            profile: name.to_string(),
        });
    }
    Ok(report)
}

/// Creates a folder and its missing parents; returns those it made,
/// outermost first.
fn make_dirs(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut missing = Vec::new();
    let mut d = dir;
    while std::fs::symlink_metadata(d).is_err() {
        missing.push(d.to_path_buf());
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    missing.reverse();
    for m in &missing {
        match std::fs::create_dir(m) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(format!("integrate: create {}", m.display()), e)),
        }
    }
    Ok(missing)
}

/// Removes the folders integrate made that are empty again, deepest
/// first; the records' own folder (and those above it) only when no
/// integration is left in it.
fn remove_folders(host: &Host) -> Result<(), Error> {
    let records = records_dir(host);
    let folders_file = folders_path(host);
    let Some(folders) = read_json::<Folders>(&folders_file) else {
        return Ok(());
    };
    let mut dirs = folders.dirs;
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    let mut left = Vec::new();
    for d in dirs {
        // The records' folder and those above it wait until the last
        // integration is removed; the others go once empty.
        let keep = records.starts_with(&d) || (std::fs::remove_dir(&d).is_err() && d.exists());
        if keep {
            left.push(d);
        }
    }
    let others = std::fs::read_dir(&records)
        .map(|rd| rd.filter_map(|e| e.ok()).any(|e| e.path() != folders_file))
        .unwrap_or(false);
    if others {
        left.sort();
        write_json(&folders_file, &Folders { dirs: left })
    } else {
        remove_file(&folders_file)?;
        for d in left {
            let _ = std::fs::remove_dir(&d);
        }
        Ok(())
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value).expect("a record serializes") + "\n";
    write_file_mode(path, &text, 0o600)
}

fn write_file(path: &Path, text: &str) -> Result<(), Error> {
    write_file_mode(path, text, 0o644)
}

/// Writes a file whole (`files::write_atomic`).
fn write_file_mode(path: &Path, text: &str, mode: u32) -> Result<(), Error> {
    crate::files::write_atomic(path, text.as_bytes(), mode, true)
        .map_err(|e| Error::io(format!("integrate: write {}", path.display()), e))
}

fn replace_symlink(path: &Path, target: &Path) -> Result<(), Error> {
    let tmp = crate::files::temp_beside(path);
    std::os::unix::fs::symlink(target, &tmp)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(format!("integrate: link {}", path.display()), e)
        })
}

fn remove_file(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(
            format!("integrate: remove {}", path.display()),
            e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_was_done_reads_as_the_command_prints_it() {
        let lines: Vec<String> = [
            Done::Linked {
                link: "~/.local/bin/sh".into(),
                target: "/usr/bin/antimony".into(),
            },
            Done::Wrote {
                file: "~/.local/share/applications/firefox-esr.desktop".into(),
                shadows: Some("/usr/share/applications/firefox-esr.desktop".into()),
            },
            Done::Wrote {
                file: "~/.local/share/applications/antimony-sh.desktop".into(),
                shadows: None,
            },
            Done::Removed {
                file: "~/.local/bin/sh".into(),
            },
            Done::NothingToRemove {
                profile: "sh".into(),
            },
        ]
        .iter()
        .map(Done::to_string)
        .collect();
        assert_eq!(
            lines,
            [
                "linked ~/.local/bin/sh → /usr/bin/antimony",
                "wrote ~/.local/share/applications/firefox-esr.desktop (shadows /usr/share/applications/firefox-esr.desktop)",
                "wrote ~/.local/share/applications/antimony-sh.desktop",
                "removed ~/.local/bin/sh",
                "nothing to remove for sh",
            ]
        );
    }
}
