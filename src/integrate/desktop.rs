//! Desktop entries and D-Bus service files: finding the system's copies
//! that start a profile's program, and writing the user's copies that
//! shadow them (same desktop id, same service file name) and start it
//! through antimony instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::keyfile::{KeyFile, Line};
use super::{IntegrateError, exec};

/// The key that marks what `antimony integrate` wrote; its value is the
/// profile's name.
pub const MARKER: &str = "X-Antimony-Profile";
pub const ENTRY_GROUP: &str = "Desktop Entry";
pub const SERVICE_GROUP: &str = "D-BUS Service";

/// What the rewritten command lines need to know.
#[derive(Debug, Clone)]
pub struct Context {
    pub profile: String,
    /// The running antimony, absolute.
    pub antimony: PathBuf,
    /// It runs from its build folder: the files say so.
    pub from_build: bool,
    /// Every program the profile may run (its `path` alternatives), as
    /// canonical host paths.
    pub programs: Vec<PathBuf>,
    /// Where a bare program name in a command line is looked up.
    pub search_path: Vec<PathBuf>,
}

impl Context {
    /// Whether a command line's program is one of the profile's.
    pub fn is_profile_program(&self, program: &str) -> bool {
        self.resolve(program)
            .is_some_and(|p| self.programs.contains(&p))
    }

    /// A command line's program as a canonical host path.
    pub fn resolve(&self, program: &str) -> Option<PathBuf> {
        let path = if program.contains('/') {
            PathBuf::from(program)
        } else {
            self.search_path
                .iter()
                .map(|d| d.join(program))
                .find(|p| p.is_file())?
        };
        std::fs::canonicalize(path).ok()
    }

    /// The words that run a command line's program, with its arguments,
    /// in the profile's sandbox: `ANTIMONY run PROFILE -- ARGS…`. A
    /// program that is not the profile's own runs in its sandbox with
    /// `--program`; `env NAME=VALUE… PROGRAM` becomes `--env`. Whatever
    /// the desktop passes (`%u`, file names) comes after `--`, so it is
    /// never read as an option of antimony's.
    pub fn command(&self, words: &[String]) -> Vec<String> {
        // The words taken from the entry keep its own `%` escaping; the
        // path antimony adds is literal: a `%` in it is written `%%`, not
        // left to be read as a field code.
        let mut out = vec![
            self.antimony.to_string_lossy().replace('%', "%%"),
            "run".to_string(),
            self.profile.clone(),
        ];
        let words: Vec<String> = words
            .iter()
            .filter(|w| !exec::DEPRECATED_FIELD_CODES.contains(&w.as_str()))
            .cloned()
            .collect();
        let Some((first, rest)) = words.split_first() else {
            return out;
        };
        let (program, args) = match unwrap_env(&words) {
            Some((assignments, program, args)) if self.is_profile_program(program) => {
                out.extend(assignments.iter().map(|a| format!("--env={a}")));
                (program, args)
            }
            _ => (first.as_str(), rest),
        };
        if !self.is_profile_program(program) {
            out.push(format!("--program={program}"));
        }
        if !args.is_empty() {
            out.push("--".to_string());
            out.extend(args.iter().cloned());
        }
        out
    }

    /// Whether a command line is the profile's program itself, given
    /// nothing but options and field codes (not `python3 some-script.py`
    /// nor `sh -c …`, which are other programs that happen to use it).
    pub fn runs_program(&self, words: &[String]) -> bool {
        let Some((first, rest)) = words.split_first() else {
            return false;
        };
        let (program, args) = match unwrap_env(words) {
            Some((_, p, a)) => (p, a),
            None => (first.as_str(), rest),
        };
        self.is_profile_program(program)
            && args
                .iter()
                .all(|a| a.starts_with('-') || a.starts_with('%'))
    }
}

/// `env NAME=VALUE… PROGRAM ARGS…` with nothing but assignments (and no
/// value that `--env` would read as `$HOST_VARIABLE`): the assignments, the
/// program and its arguments.
fn unwrap_env(words: &[String]) -> Option<(Vec<&str>, &str, &[String])> {
    let (first, rest) = words.split_first()?;
    if Path::new(first).file_name()? != "env" {
        return None;
    }
    let n = rest
        .iter()
        .take_while(|w| {
            w.split_once('=').is_some_and(|(k, v)| {
                !k.is_empty()
                    && !k.starts_with('-')
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !v.starts_with('$')
            })
        })
        .count();
    let (program, args) = rest[n..].split_first()?;
    if program.starts_with('-') || program.contains('=') {
        return None;
    }
    Some((
        rest[..n].iter().map(|s| s.as_str()).collect(),
        program.as_str(),
        args,
    ))
}

/// The words of a key file's `Exec=` value.
pub fn exec_words(value: &str) -> Option<Vec<String>> {
    exec::split(&exec::unescape_value(value))
}

/// A desktop entry found in one of the system's data folders.
#[derive(Debug, Clone)]
pub struct Found {
    /// The desktop id, `firefox-esr.desktop` (for service files: the file name).
    pub id: String,
    pub path: PathBuf,
    pub file: KeyFile,
}

/// Every desktop entry under `DIR/applications/` of each data folder; the
/// first folder that has an id wins, as the specification says. An entry
/// in a subfolder `a/b.desktop` has the id `a-b.desktop`.
pub fn scan_entries(data_dirs: &[PathBuf]) -> Vec<Found> {
    let mut found: BTreeMap<String, Found> = BTreeMap::new();
    for dir in data_dirs {
        let apps = dir.join("applications");
        let mut files = Vec::new();
        walk(&apps, &apps, 0, &mut files);
        for (id, path) in files {
            if found.contains_key(&id) {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(&path) {
                let file = KeyFile::parse(&text);
                found.insert(id.clone(), Found { id, path, file });
            }
        }
    }
    found.into_values().collect()
}

fn walk(root: &Path, dir: &Path, depth: usize, out: &mut Vec<(String, PathBuf)>) {
    if depth > 4 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(root, &path, depth + 1, out);
        } else if path.extension().is_some_and(|e| e == "desktop") {
            if let Ok(rel) = path.strip_prefix(root) {
                let id = rel.to_string_lossy().replace('/', "-");
                out.push((id, path));
            }
        }
    }
}

/// Every D-Bus service file under `DIR/dbus-1/services/`, first folder wins.
pub fn scan_services(data_dirs: &[PathBuf]) -> Vec<Found> {
    let mut found: BTreeMap<String, Found> = BTreeMap::new();
    for dir in data_dirs {
        let Ok(rd) = std::fs::read_dir(dir.join("dbus-1/services")) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !name.ends_with(".service") || found.contains_key(name) {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(&path) {
                found.insert(
                    name.to_string(),
                    Found {
                        id: name.to_string(),
                        path: path.clone(),
                        file: KeyFile::parse(&text),
                    },
                );
            }
        }
    }
    found.into_values().collect()
}

/// Whether a desktop entry is an application that is not hidden.
fn is_application(f: &Found) -> bool {
    f.file.get(ENTRY_GROUP, "Type") == Some("Application")
        && f.file.get(ENTRY_GROUP, "Hidden") != Some("true")
        && f.file.get(ENTRY_GROUP, MARKER).is_none()
}

/// The system's desktop entries for a profile: the one with its desktop
/// id, else every application entry that runs its program (by `Exec`, or
/// by `TryExec` when `Exec` passes only options and field codes).
pub fn entries_for<'a>(all: &'a [Found], id: Option<&str>, cx: &Context) -> Vec<&'a Found> {
    if let Some(id) = id {
        let want = format!("{}.desktop", id.strip_suffix(".desktop").unwrap_or(id));
        if let Some(f) = all.iter().find(|f| f.id == want && is_application(f)) {
            return vec![f];
        }
    }
    all.iter()
        .filter(|f| is_application(f))
        .filter(|f| {
            let exec = f.file.get(ENTRY_GROUP, "Exec").and_then(exec_words);
            let by_exec = exec.as_deref().is_some_and(|w| cx.runs_program(w));
            let by_try = f
                .file
                .get(ENTRY_GROUP, "TryExec")
                .is_some_and(|t| cx.is_profile_program(&exec::unescape_value(t)))
                && exec.as_deref().is_some_and(|w| {
                    w.iter()
                        .skip(1)
                        .all(|a| a.starts_with('-') || a.starts_with('%'))
                });
            by_exec || by_try
        })
        .collect()
}

/// The system's D-Bus service files that start the profile's program, or
/// that a shadowed entry is activated by (its id without `.desktop`).
pub fn services_for<'a>(all: &'a [Found], entry_ids: &[String], cx: &Context) -> Vec<&'a Found> {
    all.iter()
        .filter(|f| f.file.get(SERVICE_GROUP, MARKER).is_none())
        .filter(|f| {
            let by_exec = f
                .file
                .get(SERVICE_GROUP, "Exec")
                .and_then(exec::split)
                .is_some_and(|w| cx.runs_program(&w));
            let by_name = f.file.get(SERVICE_GROUP, "Name").is_some_and(|n| {
                entry_ids
                    .iter()
                    .any(|id| id.strip_suffix(".desktop") == Some(n))
            });
            by_exec || by_name
        })
        .collect()
}

/// The header comment of every file antimony writes.
fn header(cx: &Context, from: Option<&Path>) -> Vec<Line> {
    let mut lines = vec![Line::Other(format!(
        "# Written by `antimony integrate {}`{}: it starts the program in its sandbox.",
        cx.profile,
        from.map(|p| format!(", shadowing {}", p.display()))
            .unwrap_or_default()
    ))];
    lines.push(Line::Other(format!(
        "# `antimony integrate --remove {}` removes it.",
        cx.profile
    )));
    if cx.from_build {
        lines.push(Line::Other(format!(
            "# Written by antimony from its build folder ({}): once antimony is installed, `antimony integrate --refresh` writes it again with the installed path.",
            cx.antimony.display().to_string().replace(['\n', '\r'], " ")
        )));
    }
    lines
}

/// The user's copy of a system desktop entry: every `Exec=` (of the entry,
/// its actions and any other group) runs through antimony with the
/// original's arguments and field codes; `TryExec` names antimony; D-Bus
/// activation is off, so that the desktop uses `Exec`.
pub fn shadow_entry(f: &Found, cx: &Context) -> Result<String, IntegrateError> {
    let mut file = f.file.clone();
    for line in &mut file.lines {
        if let Line::Entry { key, value } = line {
            if key == "Exec" {
                let words = exec_words(value).ok_or_else(|| IntegrateError::UnreadableExec {
                    file: f.path.clone(),
                    line: format!("Exec={value}"),
                })?;
                *value = exec::desktop_exec(&cx.command(&words));
            }
        }
    }
    file.remove(ENTRY_GROUP, MARKER);
    if file.get(ENTRY_GROUP, "TryExec").is_some() {
        file.set(
            ENTRY_GROUP,
            "TryExec",
            &exec::escape_value(&cx.antimony.to_string_lossy()),
        );
    }
    file.set(ENTRY_GROUP, "DBusActivatable", "false");
    file.set(ENTRY_GROUP, MARKER, &cx.profile);
    let mut lines = header(cx, Some(&f.path));
    lines.append(&mut file.lines);
    Ok(KeyFile { lines }.render())
}

/// A desktop entry for a profile the system has none for.
pub fn minimal_entry(
    cx: &Context,
    id: Option<&str>,
    description: Option<&str>,
    terminal: bool,
) -> String {
    let mut lines = header(cx, None);
    lines.push(Line::Group(ENTRY_GROUP.into()));
    let mut set = |k: &str, v: String| {
        lines.push(Line::Entry {
            key: k.into(),
            value: v,
        })
    };
    set("Type", "Application".into());
    set("Name", exec::escape_value(&cx.profile));
    if let Some(d) = description.filter(|d| !d.is_empty() && *d != cx.profile) {
        set("Comment", exec::escape_value(d));
    }
    if let Some(id) = id {
        set(
            "Icon",
            exec::escape_value(id.strip_suffix(".desktop").unwrap_or(id)),
        );
    }
    set("Exec", exec::desktop_exec(&cx.command(&[])));
    set("Terminal", terminal.to_string());
    set(MARKER, cx.profile.clone());
    KeyFile { lines }.render()
}

/// The user's copy of a system D-Bus service file: `Exec` through antimony;
/// `SystemdService` dropped, so that the bus runs `Exec` rather than the
/// system's unit.
pub fn shadow_service(f: &Found, cx: &Context) -> Result<String, IntegrateError> {
    let mut file = f.file.clone();
    let line = file.get(SERVICE_GROUP, "Exec").unwrap_or_default();
    let exec = exec::split(line).ok_or_else(|| IntegrateError::UnreadableExec {
        file: f.path.clone(),
        line: format!("Exec={line}"),
    })?;
    file.set(
        SERVICE_GROUP,
        "Exec",
        &exec::service_exec(&cx.command(&exec)),
    );
    file.remove(SERVICE_GROUP, "SystemdService");
    file.remove(SERVICE_GROUP, MARKER);
    file.set(SERVICE_GROUP, MARKER, &cx.profile);
    let mut lines = header(cx, Some(&f.path));
    lines.append(&mut file.lines);
    Ok(KeyFile { lines }.render())
}

/// The profile a file antimony wrote belongs to (its marker), if any.
pub fn marker(text: &str, group: &str) -> Option<String> {
    KeyFile::parse(text).get(group, MARKER).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> Context {
        Context {
            profile: "sh".into(),
            antimony: "/opt/anti mony/antimony".into(),
            from_build: false,
            programs: vec![std::fs::canonicalize("/bin/sh").unwrap()],
            search_path: vec!["/usr/bin".into(), "/bin".into()],
        }
    }

    fn w(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn commands() {
        let cx = cx();
        assert_eq!(
            cx.command(&w(&["sh", "-x", "%u"])),
            w(&["/opt/anti mony/antimony", "run", "sh", "--", "-x", "%u"])
        );
        assert_eq!(
            cx.command(&w(&["env", "A=1", "/bin/sh", "%F", "%d"])),
            w(&[
                "/opt/anti mony/antimony",
                "run",
                "sh",
                "--env=A=1",
                "--",
                "%F"
            ])
        );
        assert_eq!(
            cx.command(&w(&["/usr/bin/other", "--flag"])),
            w(&[
                "/opt/anti mony/antimony",
                "run",
                "sh",
                "--program=/usr/bin/other",
                "--",
                "--flag"
            ])
        );
        assert!(cx.runs_program(&w(&["/bin/sh", "-i", "%U"])));
        assert!(!cx.runs_program(&w(&["sh", "-c", "x"])));
    }

    #[test]
    fn shadow_rewrites_every_exec() {
        let cx = cx();
        let text = "[Desktop Entry]\nType=Application\nName=S\nExec=sh %u\nTryExec=sh\nActions=a;\n\n[Desktop Action a]\nName=A\nExec=sh -a\n";
        let f = Found {
            id: "s.desktop".into(),
            path: "/usr/share/applications/s.desktop".into(),
            file: KeyFile::parse(text),
        };
        let out = shadow_entry(&f, &cx).unwrap();
        assert!(
            out.contains("\nExec=\"/opt/anti mony/antimony\" run sh -- %u\n"),
            "{out}"
        );
        assert!(out.contains("\nExec=\"/opt/anti mony/antimony\" run sh -- -a\n"));
        assert!(out.contains("\nTryExec=/opt/anti mony/antimony\n"));
        assert!(out.contains("\nDBusActivatable=false\n"));
        assert_eq!(marker(&out, ENTRY_GROUP).as_deref(), Some("sh"));
    }
}
